-- Named queries of the SQLite store. Each block starts with "-- name: <name>"; parameters are
-- named (:param). Lists of ids or states are passed as one JSON array and read with json_each.
-- State literals below are the sources and targets that SqliteStore checks against the
-- transition table (mailpacer.states) before it runs the query.

-- name: create_schema_version
CREATE TABLE IF NOT EXISTS schema_version (
    version     INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    applied_at  REAL NOT NULL
);

-- name: schema_version
SELECT coalesce(max(version), 0) FROM schema_version;

-- name: record_migration
INSERT INTO schema_version (version, name, applied_at) VALUES (:version, :name, :at);

-- name: insert_campaign
INSERT INTO campaigns (key, name, state, route_key, options, created_at, updated_at)
VALUES (:key, :name, 'queued', :route_key, :options, :now, :now)
ON CONFLICT (key) DO NOTHING;

-- name: campaign_by_id
SELECT id, key, name, state, reason, route_key, options, created_at, updated_at
FROM campaigns WHERE id = :id;

-- name: lock_campaign
-- before a checked state change (the IMMEDIATE transaction already holds the write lock)
SELECT id, key, name, state, reason, route_key, options, created_at, updated_at
FROM campaigns WHERE id = :id;

-- name: campaign_by_key
SELECT id, key, name, state, reason, route_key, options, created_at, updated_at
FROM campaigns WHERE key = :key;

-- name: list_campaigns
SELECT id, key, name, state, reason, route_key, options, created_at, updated_at
FROM campaigns ORDER BY id;

-- name: update_campaign_state
UPDATE campaigns SET state = :state, reason = :reason, updated_at = :now
WHERE id = :id AND state = :old;

-- name: update_campaign
UPDATE campaigns SET route_key = :route_key, options = :options, updated_at = :now
WHERE id = :id;

-- name: delete_campaign
DELETE FROM campaigns WHERE id = :id;

-- name: insert_message
INSERT INTO messages (campaign_id, row, email, variables, updated_at)
VALUES (:campaign_id, :row, :email, :variables, :now)
ON CONFLICT (campaign_id, email) DO NOTHING;

-- name: claim_messages
-- queued ones, and deferred ones that are due, in row order; the best `limit` of each kind are
-- picked by index before they are merged, so a claim costs the same on a million messages.
-- Only while the campaign is running: read in the same (IMMEDIATE) transaction as the claim.
UPDATE messages
SET state = 'sending', worker = :worker, lease_until = :lease_until, retry_at = NULL,
    started_at = NULL, updated_at = :now
WHERE EXISTS (SELECT 1 FROM campaigns WHERE id = :campaign_id AND state = 'running')
AND id IN (
    SELECT id FROM (
        SELECT id, row FROM (
            SELECT id, row FROM messages
            WHERE campaign_id = :campaign_id AND state = 'queued'
            ORDER BY row LIMIT :limit
        )
        UNION ALL
        SELECT id, row FROM (
            SELECT id, row FROM messages
            WHERE campaign_id = :campaign_id AND state = 'deferred' AND retry_at <= :now
            ORDER BY row LIMIT :limit
        )
        ORDER BY row LIMIT :limit
    )
)
RETURNING id, campaign_id, row, email, variables, attempts, first_attempt_at, lease_until;

-- name: extend_leases
UPDATE messages SET lease_until = :lease_until
WHERE worker = :worker AND state = 'sending' AND id IN (SELECT value FROM json_each(:ids));

-- name: mark_started
UPDATE messages SET started_at = coalesce(started_at, :at)
WHERE worker = :worker AND state = 'sending' AND id IN (SELECT value FROM json_each(:ids));

-- name: release_messages
UPDATE messages
SET state = 'queued', worker = NULL, lease_until = NULL, started_at = NULL, updated_at = :now
WHERE worker = :worker AND state = 'sending' AND id IN (SELECT value FROM json_each(:ids));

-- name: requeue_unstarted
-- recovered leases whose SMTP transaction never began: queued again, nothing recorded
UPDATE messages SET state = 'queued', worker = NULL, lease_until = NULL, updated_at = :now
WHERE state = 'sending' AND started_at IS NULL AND id IN (SELECT value FROM json_each(:ids));

-- name: message_states
SELECT id, campaign_id, state, worker FROM messages
WHERE id IN (SELECT value FROM json_each(:ids));

-- name: insert_attempt
INSERT INTO attempts (message_id, campaign_id, at, verdict, code, enhanced, text, route_key)
VALUES (:id, :campaign_id, :at, :verdict, :code, :enhanced, :text, :route_key);

-- name: apply_outcome
UPDATE messages SET
    state = :state,
    attempts = attempts + :counted,
    first_attempt_at = CASE
        WHEN :counted AND first_attempt_at IS NULL THEN :at ELSE first_attempt_at END,
    retry_at = :retry_at,
    worker = NULL,
    lease_until = NULL,
    started_at = NULL,
    last_verdict = :verdict,
    last_code = :code,
    last_enhanced = :enhanced,
    last_text = :text,
    ever_uncertain = max(ever_uncertain, :uncertain),
    updated_at = :at
WHERE id = :id AND state = :old;

-- name: sending_messages
SELECT id, worker, lease_until, started_at FROM messages
WHERE campaign_id = :campaign_id AND state = 'sending';

-- name: retry_messages
UPDATE messages
SET state = 'queued', attempts = 0, first_attempt_at = NULL, retry_at = NULL, updated_at = :now
WHERE campaign_id = :campaign_id AND state IN (SELECT value FROM json_each(:states));

-- name: cancel_pending
UPDATE messages SET state = 'cancelled', retry_at = NULL, updated_at = :now
WHERE campaign_id = :campaign_id AND state IN ('queued', 'deferred');

-- name: campaign_stats
-- one statement, so one consistent read: a row (state, messages) per state present, then one row
-- (NULL, NULL, attempt rows, throttle rows, messages ever uncertain, 1 if the campaign exists)
SELECT state, count(*), NULL, NULL, NULL, NULL
FROM messages WHERE campaign_id = :campaign_id GROUP BY state
UNION ALL
SELECT NULL, NULL, count(*), count(*) FILTER (WHERE verdict GLOB 'throttle*' OR verdict = 'quota'),
       (SELECT count(*) FROM messages WHERE campaign_id = :campaign_id AND ever_uncertain = 1),
       (SELECT count(*) FROM campaigns WHERE id = :campaign_id)
FROM attempts WHERE campaign_id = :campaign_id;

-- name: next_retry_at
SELECT min(retry_at) FROM messages WHERE campaign_id = :campaign_id AND state = 'deferred';

-- name: list_messages
SELECT id, campaign_id, row, email, variables, state, attempts, retry_at, last_verdict,
       last_code, last_text, updated_at, ever_uncertain, started_at
FROM messages WHERE campaign_id = :campaign_id
ORDER BY row, id LIMIT :limit OFFSET :offset;

-- name: list_messages_in_state
SELECT id, campaign_id, row, email, variables, state, attempts, retry_at, last_verdict,
       last_code, last_text, updated_at, ever_uncertain, started_at
FROM messages WHERE campaign_id = :campaign_id AND state = :state
ORDER BY row, id LIMIT :limit OFFSET :offset;

-- name: message_attempts
SELECT id, message_id, at, verdict, code, enhanced, text, route_key
FROM attempts WHERE message_id = :message_id ORDER BY id;

-- name: sent_by_route
-- accepted attempts per route (a sent message has exactly one); NULL: made before 0005
SELECT route_key, count(*) FROM attempts
WHERE campaign_id = :campaign_id AND verdict = 'accepted'
GROUP BY route_key;

-- name: load_route_limits
SELECT limits FROM routes WHERE key = :key;

-- name: save_route_limits
INSERT INTO routes (key, limits, updated_at, version) VALUES (:key, :limits, :now, 1)
ON CONFLICT (key) DO UPDATE SET limits = excluded.limits, updated_at = excluded.updated_at,
    version = routes.version + 1;

-- name: insert_event
INSERT INTO events (campaign_id, at, kind, data) VALUES (:campaign_id, :at, :kind, :data)
RETURNING id;

-- name: all_events
SELECT id, campaign_id, at, kind, data FROM events WHERE id > :after_id ORDER BY id LIMIT :limit;

-- name: campaign_events
SELECT id, campaign_id, at, kind, data FROM events
WHERE campaign_id = :campaign_id AND id > :after_id ORDER BY id LIMIT :limit;

-- name: applied_versions
-- (the queries from here to the end are the suppression list's, migration 0003, plus this one
-- for the migration runner: every version applied, so a lower one merged later is applied too)
SELECT version FROM schema_version ORDER BY version;

-- name: suppress_bounced
-- with a recipient-rejected 5.1.x outcome, in the same transaction
INSERT INTO suppressions (email, reason, source, campaign_id, created_at)
SELECT lower(email), :reason, 'bounce', campaign_id, :at FROM messages WHERE id = :id
ON CONFLICT (email) DO NOTHING;

-- name: insert_suppression
INSERT INTO suppressions (email, reason, source, campaign_id, created_at)
VALUES (:email, :reason, :source, NULL, :now)
ON CONFLICT (email) DO NOTHING;

-- name: delete_suppression
DELETE FROM suppressions WHERE email = :email;

-- name: list_suppressions
SELECT email, reason, source, campaign_id, created_at FROM suppressions
ORDER BY created_at, email LIMIT :limit OFFSET :offset;

-- name: suppressed_among
SELECT email, reason, source, campaign_id, created_at FROM suppressions
WHERE email IN (SELECT value FROM json_each(:emails));

-- name: lock_route
-- (the queries from here to the end are a route's shared budget, migration 0004) before a
-- change to a route's slots or limits; the IMMEDIATE transaction already holds the write lock
SELECT 1 WHERE :key IS NOT NULL;

-- name: route_limits_for_update
SELECT limits FROM routes WHERE key = :key;

-- name: write_route_limits
INSERT INTO routes (key, limits, updated_at, version) VALUES (:key, :limits, :now, 1)
ON CONFLICT (key) DO UPDATE SET limits = excluded.limits, updated_at = excluded.updated_at,
    version = routes.version + 1
RETURNING version;

-- name: route_limits_version
SELECT version FROM routes WHERE key = :key;

-- name: expire_route_slots
DELETE FROM route_slots WHERE route_key = :key AND lease_until <= :now;

-- name: expire_route_members
DELETE FROM route_members WHERE route_key = :key AND lease_until <= :now;

-- name: route_slots
SELECT slot, holder FROM route_slots WHERE route_key = :key ORDER BY slot;

-- name: take_route_slot
INSERT INTO route_slots (route_key, slot, holder, lease_until)
VALUES (:key, :slot, :holder, :lease_until);

-- name: renew_route_slots
UPDATE route_slots SET lease_until = :lease_until WHERE route_key = :key AND holder = :holder;

-- name: upsert_route_member
INSERT INTO route_members (route_key, holder, wants, target, lease_until)
VALUES (:key, :holder, :wants, :target, :lease_until)
ON CONFLICT (route_key, holder) DO UPDATE SET wants = excluded.wants, target = excluded.target,
    lease_until = excluded.lease_until;

-- name: route_members
SELECT holder, wants, target FROM route_members WHERE route_key = :key ORDER BY holder;

-- name: release_route_slot
DELETE FROM route_slots WHERE route_key = :key AND holder = :holder AND slot = :slot;

-- name: leave_route_slots
DELETE FROM route_slots WHERE route_key = :key AND holder = :holder;

-- name: leave_route_member
DELETE FROM route_members WHERE route_key = :key AND holder = :holder;

-- name: reserve_route_send
-- the shared "next send at" clock: the send may start at the returned time, the clock moves on
-- by one interval; one statement, so two processes never get the same moment
INSERT INTO route_pace (route_key, next_send_at) VALUES (:key, :now + :interval)
ON CONFLICT (route_key) DO UPDATE
    SET next_send_at = max(route_pace.next_send_at, :now) + :interval
RETURNING next_send_at - :interval;
