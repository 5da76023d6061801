-- A suppressed repeat names the alert whose delivery it repeats. Before, a repeat counted as
-- delivered by being suppressed: one that came while the first alert was still being sent was
-- suppressed, the first then failed on every channel, and every later repeat found the
-- suppressed one within the window and was suppressed in turn, so an alert that kept firing
-- was never heard, even after the channel came back. Now a repeat suppresses the next one only
-- while the alert it names was delivered, or is still being delivered, on some channel.
-- Repeats stored before this migration name nothing and suppress nothing more.
ALTER TABLE alerts ADD COLUMN suppressed_by BIGINT REFERENCES alerts (id);
