"""The sentiment (Twitter, Reddit, LunarCrush) and on-chain (Glassnode, Moralis) collectors."""
