-- The current schema in one place, for reading. It must equal what the migrations build from an
-- empty file (tests/integration/test_store_migrations.py checks it): a new migration updates it.

CREATE TABLE schema_version (
    version     INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    applied_at  REAL NOT NULL
);

CREATE TABLE campaigns (
    id          INTEGER PRIMARY KEY,
    key         TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    state       TEXT NOT NULL DEFAULT 'queued'
                CHECK (state IN ('queued', 'running', 'paused', 'waiting', 'done', 'cancelled')),
    reason      TEXT,
    route_key   TEXT NOT NULL,
    options     TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(options)),
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL
);

CREATE TABLE messages (
    id                INTEGER PRIMARY KEY,
    campaign_id       INTEGER NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    row               INTEGER NOT NULL,
    email             TEXT NOT NULL,
    variables         TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(variables)),
    state             TEXT NOT NULL DEFAULT 'queued'
                      CHECK (state IN ('queued', 'sending', 'sent', 'deferred', 'failed',
                                       'uncertain', 'cancelled')),
    attempts          INTEGER NOT NULL DEFAULT 0,
    first_attempt_at  REAL,
    retry_at          REAL,
    worker            TEXT,
    lease_until       REAL,
    last_verdict      TEXT,
    last_code         INTEGER,
    last_enhanced     TEXT,
    last_text         TEXT,
    ever_uncertain    INTEGER NOT NULL DEFAULT 0,
    updated_at        REAL NOT NULL,
    started_at        REAL
                      CONSTRAINT started_only_while_sending
                      CHECK (started_at IS NULL OR state = 'sending'),
    UNIQUE (campaign_id, email),
    CHECK (state != 'deferred' OR retry_at IS NOT NULL),
    CHECK (state != 'sending' OR (worker IS NOT NULL AND lease_until IS NOT NULL))
);

-- claims (queued, by row), due deferred messages, counts per state
CREATE INDEX messages_by_state ON messages (campaign_id, state, row);
CREATE INDEX messages_by_retry ON messages (campaign_id, state, retry_at);
CREATE INDEX messages_uncertain ON messages (campaign_id) WHERE ever_uncertain = 1;

CREATE TABLE attempts (
    id           INTEGER PRIMARY KEY,
    message_id   INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    campaign_id  INTEGER NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    at           REAL NOT NULL,
    verdict      TEXT NOT NULL,
    code         INTEGER,
    enhanced     TEXT,
    text         TEXT NOT NULL,
    route_key    TEXT  -- 0005: the route that made the attempt
);

CREATE INDEX attempts_by_message ON attempts (message_id, id);
CREATE INDEX attempts_by_campaign ON attempts (campaign_id, verdict);

CREATE TABLE routes (
    key         TEXT PRIMARY KEY,
    limits      TEXT NOT NULL CHECK (json_valid(limits)),
    updated_at  REAL NOT NULL,
    version     INTEGER NOT NULL DEFAULT 0  -- 0004: bumped by every write of the limits
);

CREATE TABLE events (
    id           INTEGER PRIMARY KEY,
    campaign_id  INTEGER REFERENCES campaigns (id) ON DELETE CASCADE,
    at           REAL NOT NULL,
    kind         TEXT NOT NULL,
    data         TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(data))
);

CREATE INDEX events_by_campaign ON events (campaign_id, id);

-- 0003: the suppression list (hard bounces, unsubscribes, added by hand)
CREATE TABLE suppressions (
    email        TEXT PRIMARY KEY,
    reason       TEXT NOT NULL,
    source       TEXT NOT NULL CHECK (source IN ('bounce', 'unsubscribe', 'manual')),
    campaign_id  INTEGER REFERENCES campaigns (id) ON DELETE SET NULL,
    created_at   REAL NOT NULL
);

-- 0004: a route's budget shared by every process (connection slots, members, pace)
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
