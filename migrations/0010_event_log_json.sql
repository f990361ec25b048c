-- The event log keeps each event as json (its text, checked to be JSON) instead of jsonb.
--
-- The worker writes an event log row for every event it claims, and turning an event's
-- text into jsonb (parsing it into a tree, sorting its keys, laying it out in binary) was
-- the largest part of PostgreSQL's work a claim after the index inserts. Nothing queries
-- the stored event by its inner structure in bulk: the columns the log is searched by
-- (tenant, type, recipient, message id, time) are columns of their own, which the worker
-- now fills from its own arrays instead of reading them out of the event, and the API
-- returns the event as it is. The json type stores the text normalize.c serialized, the
-- same bytes as the record on mailhook.events, and returns it unchanged; ->, ->> and
-- the soft-bounce rule's lookups work on it as before, reading the text each time they
-- run (a filter by source or provider, the soft-bounce rule's class of a bounce).
--
-- The change rewrites every partition of the event log and rebuilds its indexes, holding
-- an exclusive lock on it meanwhile: claims wait until it is done. Workers of the
-- previous release keep working after it (their jsonb is assigned to the json column),
-- and this release's workers work against the previous schema the same way.

ALTER TABLE mh_event_claims ALTER COLUMN event TYPE json USING event::json;

-- The soft-bounce rule's test of one stored event, on the json the log now holds.
DROP FUNCTION mh_is_soft(text, jsonb, boolean);
CREATE FUNCTION mh_is_soft(p_type text, p_event json, p_count_delays boolean) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN (p_type = 'email.bounced'
            AND coalesce(p_event -> 'bounce' ->> 'class', 'undetermined') <> 'hard')
        OR (p_count_delays AND p_type = 'email.delivery_delayed');
