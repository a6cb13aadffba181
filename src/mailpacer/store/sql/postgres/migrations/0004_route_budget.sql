-- 0004: a route's budget shared by every worker, as SQLite's 0004: connection slots under short
-- leases, the workers carrying a route with how many connections each would use, one shared
-- "next send at" clock per route, and a version on the learned limits. Independent of 0002, 0003.

ALTER TABLE routes ADD COLUMN version bigint NOT NULL DEFAULT 0;

CREATE TABLE route_slots (
    route_key    text NOT NULL,
    slot         integer NOT NULL CHECK (slot >= 0),
    holder       text NOT NULL,
    lease_until  double precision NOT NULL,
    PRIMARY KEY (route_key, slot)
);

CREATE TABLE route_members (
    route_key    text NOT NULL,
    holder       text NOT NULL,
    wants        integer NOT NULL CHECK (wants >= 0),
    target       integer NOT NULL CHECK (target >= 0),
    lease_until  double precision NOT NULL,
    PRIMARY KEY (route_key, holder)
);

CREATE TABLE route_pace (
    route_key     text PRIMARY KEY,
    next_send_at  double precision NOT NULL
);
