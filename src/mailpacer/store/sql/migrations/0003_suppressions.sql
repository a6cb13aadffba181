-- 0003: the suppression list: addresses no campaign sends to. A hard bounce (5.1.x recipient
-- rejected, written with the outcome), an unsubscribe, or `mailpacer suppress add`. One row per
-- lower-cased address; the first reason is kept. Independent of 0002 (applied in either order).

CREATE TABLE suppressions (
    email        TEXT PRIMARY KEY,
    reason       TEXT NOT NULL,
    source       TEXT NOT NULL CHECK (source IN ('bounce', 'unsubscribe', 'manual')),
    campaign_id  INTEGER REFERENCES campaigns (id) ON DELETE SET NULL,
    created_at   REAL NOT NULL
);
