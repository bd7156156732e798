-- A subscription past its `end` is turned off (R4: Subscription.end is "the time for the server
-- to turn the subscription off"), and so is a deleted one. Their deliveries still pending are
-- resolved explicitly, not left pending forever: state 'expired', when and why, counted per
-- subscription on the administrators' page (api.store.delivery.expire).
ALTER TABLE delivery DROP CONSTRAINT delivery_state_check;
ALTER TABLE delivery ADD CONSTRAINT delivery_state_check
    CHECK (state IN ('pending', 'delivered', 'expired'));
ALTER TABLE delivery ADD COLUMN expired_at timestamptz;
ALTER TABLE delivery ADD COLUMN expired_reason text;
ALTER TABLE delivery ADD CONSTRAINT delivery_expired_why
    CHECK ((state = 'expired') = (expired_at IS NOT NULL AND expired_reason IS NOT NULL));
