-- 0003: the suppression list, as SQLite's 0003: addresses no campaign sends to (hard bounces,
-- unsubscribes, added by hand), one row per lower-cased address; independent of 0002.

CREATE TABLE suppressions (
    email        text PRIMARY KEY,
    reason       text NOT NULL,
    source       text NOT NULL CHECK (source IN ('bounce', 'unsubscribe', 'manual')),
    campaign_id  bigint REFERENCES campaigns (id) ON DELETE SET NULL,
    created_at   double precision NOT NULL
);
