"""Pure arbitrage detection: exact Decimal maths on quotes, no I/O.

`spread` prices one buy/sell pair of quotes; `book` keeps the latest usable quote per venue and
symbol; `triangle` finds and prices three-leg cycles on one venue; `cross` prices one symbol
bought on one venue and sold on another. Every quote is checked finite and fresh before use.
"""

from mastertrade.arbitrage.domain.spread import Quotes, SpreadResult, evaluate_spread

__all__ = ["Quotes", "SpreadResult", "evaluate_spread"]
