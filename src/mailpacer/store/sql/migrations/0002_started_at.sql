-- 0002: when a claimed message's SMTP transaction began (Store.mark_started). Set only while the
-- message is 'sending'; recovery tells a message that may have been delivered (started) from one
-- that never left (not started: queued again, nothing recorded).

ALTER TABLE messages
    ADD COLUMN started_at REAL
                      CONSTRAINT started_only_while_sending
                      CHECK (started_at IS NULL OR state = 'sending');
