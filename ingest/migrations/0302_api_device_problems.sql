-- The worklist's "device problems" look up the few home devices with a low battery or a long
-- silence instead of scanning every device (migration 0002 has no index for either).
CREATE INDEX device_low_battery ON device (owner_id) WHERE battery_pct < 20;
CREATE INDEX device_owner_last_seen ON device (last_seen_at) WHERE owner_id IS NOT NULL;
