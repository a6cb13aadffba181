-- Named queries of the PostgreSQL store: the same names as ../queries.sql (SQLite), parameters in
-- psycopg's %(name)s style (so no bare percent sign may appear). Lists of ids or states are
-- arrays. jsonb columns are read back as text. State literals below are the sources and targets
-- that the store checks against the transition table (mailpacer.states) before it runs the query.
-- Rows a transaction will change are locked first (FOR UPDATE); claims skip locked rows, so
-- workers claiming at the same moment take different messages without waiting for each other.

-- name: create_schema_version
CREATE TABLE IF NOT EXISTS schema_version (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    applied_at  double precision NOT NULL
);

-- name: schema_version
SELECT coalesce(max(version), 0) FROM schema_version;

-- name: record_migration
INSERT INTO schema_version (version, name, applied_at) VALUES (%(version)s, %(name)s, %(at)s);

-- name: insert_campaign
INSERT INTO campaigns (key, name, state, route_key, options, created_at, updated_at)
VALUES (%(key)s, %(name)s, 'queued', %(route_key)s, %(options)s::jsonb, %(now)s, %(now)s)
ON CONFLICT (key) DO NOTHING;

-- name: campaign_by_id
SELECT id, key, name, state, reason, route_key, options, created_at, updated_at
FROM campaigns WHERE id = %(id)s;

-- name: lock_campaign
-- before a checked state change: a concurrent change waits until this transaction ends
SELECT id, key, name, state, reason, route_key, options, created_at, updated_at
FROM campaigns WHERE id = %(id)s FOR UPDATE;

-- name: campaign_by_key
SELECT id, key, name, state, reason, route_key, options, created_at, updated_at
FROM campaigns WHERE key = %(key)s;

-- name: list_campaigns
SELECT id, key, name, state, reason, route_key, options, created_at, updated_at
FROM campaigns ORDER BY id;

-- name: update_campaign_state
UPDATE campaigns SET state = %(state)s, reason = %(reason)s, updated_at = %(now)s
WHERE id = %(id)s AND state = %(old)s;

-- name: update_campaign
UPDATE campaigns SET route_key = %(route_key)s, options = %(options)s, updated_at = %(now)s
WHERE id = %(id)s;

-- name: delete_campaign
DELETE FROM campaigns WHERE id = %(id)s;

-- name: insert_message
INSERT INTO messages (campaign_id, row, email, variables, updated_at)
VALUES (%(campaign_id)s, %(row)s, %(email)s, %(variables)s::jsonb, %(now)s)
ON CONFLICT (campaign_id, email) DO NOTHING;

-- name: claim_messages
-- queued ones, and deferred ones that are due, in row order; the best `limit` of each kind are
-- picked by index (skipping rows another claim holds) before they are merged, so a claim costs
-- the same on a million messages and concurrent claims never wait for each other.
-- Only while the campaign is running: its row is share-locked first, so a state change waits
-- for claims in progress and a claim waits for a state change in progress, then re-reads the
-- committed state (nothing is claimed after a pause or cancel is committed).
WITH running AS (
    SELECT id FROM campaigns WHERE id = %(campaign_id)s AND state = 'running'
    FOR SHARE
), queued AS (
    SELECT id, row FROM messages
    WHERE campaign_id = (SELECT id FROM running) AND state = 'queued'
    ORDER BY row LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), due AS (
    SELECT id, row FROM messages
    WHERE campaign_id = (SELECT id FROM running) AND state = 'deferred'
      AND retry_at <= %(now)s
    ORDER BY row LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), picked AS (
    SELECT id FROM (SELECT id, row FROM queued UNION ALL SELECT id, row FROM due) AS candidates
    ORDER BY row LIMIT %(limit)s
)
UPDATE messages AS m
SET state = 'sending', worker = %(worker)s, lease_until = %(lease_until)s, retry_at = NULL,
    started_at = NULL, updated_at = %(now)s
FROM picked WHERE m.id = picked.id
RETURNING m.id, m.campaign_id, m.row, m.email, m.variables, m.attempts, m.first_attempt_at,
          m.lease_until;

-- name: extend_leases
UPDATE messages SET lease_until = %(lease_until)s
WHERE worker = %(worker)s AND state = 'sending' AND id = ANY (%(ids)s::bigint[]);

-- name: mark_started
UPDATE messages SET started_at = coalesce(started_at, %(at)s)
WHERE worker = %(worker)s AND state = 'sending' AND id = ANY (%(ids)s::bigint[]);

-- name: release_messages
UPDATE messages
SET state = 'queued', worker = NULL, lease_until = NULL, started_at = NULL, updated_at = %(now)s
WHERE worker = %(worker)s AND state = 'sending' AND id = ANY (%(ids)s::bigint[]);

-- name: requeue_unstarted
-- recovered leases whose SMTP transaction never began: queued again, nothing recorded
UPDATE messages SET state = 'queued', worker = NULL, lease_until = NULL, updated_at = %(now)s
WHERE state = 'sending' AND started_at IS NULL AND id = ANY (%(ids)s::bigint[]);

-- name: message_states
-- locked in id order (so two batches never deadlock) until the outcomes are written
SELECT id, campaign_id, state, worker FROM messages
WHERE id = ANY (%(ids)s::bigint[]) ORDER BY id FOR UPDATE;

-- name: insert_attempt
INSERT INTO attempts (message_id, campaign_id, at, verdict, code, enhanced, text, route_key)
VALUES (%(id)s, %(campaign_id)s, %(at)s, %(verdict)s, %(code)s, %(enhanced)s, %(text)s,
        %(route_key)s);

-- name: apply_outcome
UPDATE messages SET
    state = %(state)s,
    attempts = attempts + %(counted)s,
    first_attempt_at = CASE
        WHEN %(counted)s = 1 AND first_attempt_at IS NULL THEN %(at)s ELSE first_attempt_at END,
    retry_at = %(retry_at)s,
    worker = NULL,
    lease_until = NULL,
    started_at = NULL,
    last_verdict = %(verdict)s,
    last_code = %(code)s,
    last_enhanced = %(enhanced)s,
    last_text = %(text)s,
    ever_uncertain = ever_uncertain OR %(uncertain)s = 1,
    updated_at = %(at)s
WHERE id = %(id)s AND state = %(old)s;

-- name: sending_messages
-- rows locked by a worker recording its outcomes right now are left to it
SELECT id, worker, lease_until, started_at FROM messages
WHERE campaign_id = %(campaign_id)s AND state = 'sending'
ORDER BY id FOR UPDATE SKIP LOCKED;

-- name: retry_messages
UPDATE messages
SET state = 'queued', attempts = 0, first_attempt_at = NULL, retry_at = NULL,
    updated_at = %(now)s
WHERE campaign_id = %(campaign_id)s AND state = ANY (%(states)s::text[]);

-- name: cancel_pending
UPDATE messages SET state = 'cancelled', retry_at = NULL, updated_at = %(now)s
WHERE campaign_id = %(campaign_id)s AND state IN ('queued', 'deferred');

-- name: campaign_stats
-- one statement, so one consistent read: a row (state, messages) per state present, then one row
-- (NULL, NULL, attempt rows, throttle rows, messages ever uncertain, 1 if the campaign exists)
SELECT state, count(*), NULL, NULL, NULL, NULL
FROM messages WHERE campaign_id = %(campaign_id)s GROUP BY state
UNION ALL
SELECT NULL, NULL, count(*),
       count(*) FILTER (WHERE starts_with(verdict, 'throttle') OR verdict = 'quota'),
       (SELECT count(*) FROM messages WHERE campaign_id = %(campaign_id)s AND ever_uncertain),
       (SELECT count(*) FROM campaigns WHERE id = %(campaign_id)s)
FROM attempts WHERE campaign_id = %(campaign_id)s;

-- name: next_retry_at
SELECT min(retry_at) FROM messages WHERE campaign_id = %(campaign_id)s AND state = 'deferred';

-- name: list_messages
SELECT id, campaign_id, row, email, variables, state, attempts, retry_at, last_verdict,
       last_code, last_text, updated_at, ever_uncertain, started_at
FROM messages WHERE campaign_id = %(campaign_id)s
ORDER BY row, id LIMIT %(limit)s OFFSET %(offset)s;

-- name: list_messages_in_state
SELECT id, campaign_id, row, email, variables, state, attempts, retry_at, last_verdict,
       last_code, last_text, updated_at, ever_uncertain, started_at
FROM messages WHERE campaign_id = %(campaign_id)s AND state = %(state)s
ORDER BY row, id LIMIT %(limit)s OFFSET %(offset)s;

-- name: message_attempts
SELECT id, message_id, at, verdict, code, enhanced, text, route_key
FROM attempts WHERE message_id = %(message_id)s ORDER BY id;

-- name: sent_by_route
-- accepted attempts per route (a sent message has exactly one); NULL: made before 0005
SELECT route_key, count(*) FROM attempts
WHERE campaign_id = %(campaign_id)s AND verdict = 'accepted'
GROUP BY route_key;

-- name: load_route_limits
SELECT limits FROM routes WHERE key = %(key)s;

-- name: save_route_limits
INSERT INTO routes (key, limits, updated_at, version)
VALUES (%(key)s, %(limits)s::jsonb, %(now)s, 1)
ON CONFLICT (key) DO UPDATE SET limits = excluded.limits, updated_at = excluded.updated_at,
    version = routes.version + 1;

-- name: insert_event
INSERT INTO events (campaign_id, at, kind, data)
VALUES (%(campaign_id)s, %(at)s, %(kind)s, %(data)s::jsonb)
RETURNING id;

-- name: all_events
SELECT id, campaign_id, at, kind, data FROM events
WHERE id > %(after_id)s ORDER BY id LIMIT %(limit)s;

-- name: campaign_events
SELECT id, campaign_id, at, kind, data FROM events
WHERE campaign_id = %(campaign_id)s AND id > %(after_id)s ORDER BY id LIMIT %(limit)s;

-- name: applied_versions
-- (the queries from here to the end are the suppression list's, migration 0003, plus this one
-- for the migration runner: every version applied, so a lower one merged later is applied too)
SELECT version FROM schema_version ORDER BY version;

-- name: suppress_bounced
-- with a recipient-rejected 5.1.x outcome, in the same transaction
INSERT INTO suppressions (email, reason, source, campaign_id, created_at)
SELECT lower(email), %(reason)s, 'bounce', campaign_id, %(at)s FROM messages WHERE id = %(id)s
ON CONFLICT (email) DO NOTHING;

-- name: insert_suppression
INSERT INTO suppressions (email, reason, source, campaign_id, created_at)
VALUES (%(email)s, %(reason)s, %(source)s, NULL, %(now)s)
ON CONFLICT (email) DO NOTHING;

-- name: delete_suppression
DELETE FROM suppressions WHERE email = %(email)s;

-- name: list_suppressions
SELECT email, reason, source, campaign_id, created_at FROM suppressions
ORDER BY created_at, email LIMIT %(limit)s OFFSET %(offset)s;

-- name: suppressed_among
SELECT email, reason, source, campaign_id, created_at FROM suppressions
WHERE email = ANY (%(emails)s::text[]);

-- name: lock_route
-- (the queries from here to the end are a route's shared budget, migration 0004) before a
-- change to a route's slots or limits: one transaction-scoped advisory lock per route
SELECT pg_advisory_xact_lock(hashtextextended(%(key)s, 4));

-- name: route_limits_for_update
SELECT limits FROM routes WHERE key = %(key)s FOR UPDATE;

-- name: write_route_limits
INSERT INTO routes (key, limits, updated_at, version)
VALUES (%(key)s, %(limits)s::jsonb, %(now)s, 1)
ON CONFLICT (key) DO UPDATE SET limits = excluded.limits, updated_at = excluded.updated_at,
    version = routes.version + 1
RETURNING version;

-- name: route_limits_version
SELECT version FROM routes WHERE key = %(key)s;

-- name: expire_route_slots
DELETE FROM route_slots WHERE route_key = %(key)s AND lease_until <= %(now)s;

-- name: expire_route_members
DELETE FROM route_members WHERE route_key = %(key)s AND lease_until <= %(now)s;

-- name: route_slots
SELECT slot, holder FROM route_slots WHERE route_key = %(key)s ORDER BY slot;

-- name: take_route_slot
INSERT INTO route_slots (route_key, slot, holder, lease_until)
VALUES (%(key)s, %(slot)s, %(holder)s, %(lease_until)s);

-- name: renew_route_slots
UPDATE route_slots SET lease_until = %(lease_until)s
WHERE route_key = %(key)s AND holder = %(holder)s;

-- name: upsert_route_member
INSERT INTO route_members (route_key, holder, wants, target, lease_until)
VALUES (%(key)s, %(holder)s, %(wants)s, %(target)s, %(lease_until)s)
ON CONFLICT (route_key, holder) DO UPDATE SET wants = excluded.wants, target = excluded.target,
    lease_until = excluded.lease_until;

-- name: route_members
SELECT holder, wants, target FROM route_members WHERE route_key = %(key)s ORDER BY holder;

-- name: release_route_slot
DELETE FROM route_slots
WHERE route_key = %(key)s AND holder = %(holder)s AND slot = %(slot)s;

-- name: leave_route_slots
DELETE FROM route_slots WHERE route_key = %(key)s AND holder = %(holder)s;

-- name: leave_route_member
DELETE FROM route_members WHERE route_key = %(key)s AND holder = %(holder)s;

-- name: reserve_route_send
-- the shared "next send at" clock: the send may start at the returned time, the clock moves on
-- by one interval; one statement (the row is locked by the upsert), so two workers never get
-- the same moment
INSERT INTO route_pace (route_key, next_send_at)
VALUES (%(key)s, %(now)s::double precision + %(interval)s::double precision)
ON CONFLICT (route_key) DO UPDATE
    SET next_send_at = greatest(route_pace.next_send_at, %(now)s::double precision)
                       + %(interval)s::double precision
RETURNING next_send_at - %(interval)s::double precision;
