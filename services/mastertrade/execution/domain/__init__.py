"""Pure execution logic: paper fills, the cash-and-positions ledger, exchange filters."""
