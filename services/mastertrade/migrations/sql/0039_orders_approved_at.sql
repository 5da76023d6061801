-- When the risk manager approved the order (its `order.approved` message's `approved_at`). An
-- order not sent within APPROVAL_LIFETIME_SECONDS of it is rejected, never sent or filled: an
-- executor away for longer, or an approval replayed by hand from the dead letters, would
-- otherwise act on risk checks of the equity and prices of long ago, and a closing sell queued
-- meanwhile would sell the same coins a second time. Orders recorded before this migration have
-- none and are not checked.
ALTER TABLE orders ADD COLUMN approved_at TIMESTAMPTZ;
