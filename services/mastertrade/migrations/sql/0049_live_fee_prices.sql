-- A live commission Binance takes in a third asset (BNB, when BNB pays the fees) valued in the
-- quote asset. `balances.mark`: the asset's price in the quote asset at the latest valuation of
-- the live account that had a quote for it (the mid it counted the holding at), `marked_at`
-- when; kept through valuations without a quote (the holding then counts at it if dust, else no
-- equity is stored), NULL until first valued. `fills.fee_price`: the price a commission in a
-- third asset was counted at in the order's fee (that mark, when recent); NULL for one in the
-- quote asset or the traded coin, for one no recent mark priced (the order's fee leaves it out;
-- the executor logs a warning naming it), and for every fill booked before this migration (a
-- commission in BNB then counted at what the books' BNB cost, or not at all). The fills' check
-- is NOT VALID: their rows are all NULL, and validating it would scan the largest trading table
-- under an exclusive lock that holds every fill's insert.
ALTER TABLE balances
    ADD COLUMN mark      NUMERIC CHECK (mark IS NULL OR mark > 0),
    ADD COLUMN marked_at TIMESTAMPTZ;
ALTER TABLE fills ADD COLUMN fee_price NUMERIC;
ALTER TABLE fills ADD CONSTRAINT fills_fee_price_positive
    CHECK (fee_price IS NULL OR fee_price > 0) NOT VALID;
