-- Each position's price at the executor's latest valuation of the account (the mid it valued
-- it at), so that the risk manager values what is held at the market, not at the price of the
-- signal it is deciding: a limit buy far below the market would otherwise count the coins
-- already held at its limit, and take the position past MAX_POSITION_SIZE_PCT. NULL until the
-- position is first valued.
ALTER TABLE positions ADD COLUMN mark NUMERIC;
