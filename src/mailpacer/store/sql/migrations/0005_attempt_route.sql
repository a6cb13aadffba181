-- 0005: the route each attempt went through (a campaign spread over a group of routes counts
-- what each route sent). NULL for attempts made before, and for those no route made (a lost
-- lease recovered, a resend queued). Independent of 0002-0004.

ALTER TABLE attempts ADD COLUMN route_key TEXT;
