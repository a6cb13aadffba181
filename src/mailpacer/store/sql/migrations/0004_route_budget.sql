-- 0004: a route's budget shared by every process on this database (DESIGN §5, §6). Connection
-- slots held under short leases (a dead holder's slots free when its lease ends), the processes
-- that carry a route and how many connections each would use (for fair shares), one shared
-- "next send at" clock per route (its rate), and a version on the learned limits so every
-- process notices another's lesson. Independent of 0002 and 0003.

ALTER TABLE routes ADD COLUMN version INTEGER NOT NULL DEFAULT 0;

CREATE TABLE route_slots (
    route_key    TEXT NOT NULL,
    slot         INTEGER NOT NULL CHECK (slot >= 0),
    holder       TEXT NOT NULL,
    lease_until  REAL NOT NULL,
    PRIMARY KEY (route_key, slot)
);

CREATE TABLE route_members (
    route_key    TEXT NOT NULL,
    holder       TEXT NOT NULL,
    wants        INTEGER NOT NULL CHECK (wants >= 0),
    target       INTEGER NOT NULL CHECK (target >= 0),
    lease_until  REAL NOT NULL,
    PRIMARY KEY (route_key, holder)
);

CREATE TABLE route_pace (
    route_key     TEXT PRIMARY KEY,
    next_send_at  REAL NOT NULL
);
