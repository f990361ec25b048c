-- The event log keeps each event as json (its text, checked to be JSON) instead of jsonb,
-- and the event's source in a column of its own.
--
-- The worker writes an event log row for every event it claims, and turning an event's
-- text into jsonb (parsing it into a tree, sorting its keys, laying it out in binary) was
-- the largest part of PostgreSQL's work a claim after the index inserts. The columns the
-- log is searched by (tenant, type, recipient, message id, time, and now source) are
-- columns of their own, which the worker fills from its own arrays instead of reading
-- them out of the event, and the API returns the event as it is. The json type stores
-- the text normalize.c serialized, the same bytes as the record on mailhook.events, and
-- returns it unchanged; -> and ->> work on it as before but read the text each time, so
-- what is read in bulk gets a column: the source (the sources' event counts, the log's
-- filter by source), filled here from the stored events. The provider filter reads the
-- claim's dedup scope, which starts with the provider's name. The soft-bounce rule reads
-- a bounce's class from the few events of one address.
--
-- The change rewrites every partition of the event log and rebuilds its indexes, holding
-- an exclusive lock on it meanwhile: claims wait until it is done. This release's
-- workers write the source column, so migrate before starting them. Workers of the
-- previous release keep working after it: their jsonb is assigned to the json column and
-- they leave the source NULL, which the readers then take from the event.

-- One rewrite of the table for both: the source is computed from each stored event as a
-- generated column, which then becomes a plain one the worker writes.
ALTER TABLE mh_event_claims
    ALTER COLUMN event TYPE json USING event::json,
    ADD COLUMN source text GENERATED ALWAYS AS (event ->> 'source') STORED;
ALTER TABLE mh_event_claims ALTER COLUMN source DROP EXPRESSION;

-- The soft-bounce rule's test of one stored event, on the json the log now holds.
DROP FUNCTION mh_is_soft(text, jsonb, boolean);
CREATE FUNCTION mh_is_soft(p_type text, p_event json, p_count_delays boolean) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN (p_type = 'email.bounced'
            AND coalesce(p_event -> 'bounce' ->> 'class', 'undetermined') <> 'hard')
        OR (p_count_delays AND p_type = 'email.delivery_delayed');

-- As 0008's, with the columns of the rows it moves read from the catalog: every stored
-- column of the event log (the source now, and any a later migration adds), not a list
-- that has to follow the table.
CREATE OR REPLACE FUNCTION mh_event_claims_create_partition(d date) RETURNS boolean
    LANGUAGE plpgsql AS $$
DECLARE
    w date := mh_claim_week(d);
    part text := format('mh_event_claims_w%s', to_char(w, 'YYYYMMDD'));
    cols text;
    moved bigint;
BEGIN
    IF to_regclass(part) IS NOT NULL THEN
        RETURN false;
    END IF;
    SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO cols
      FROM pg_attribute
     WHERE attrelid = 'mh_event_claims'::regclass AND attnum > 0 AND NOT attisdropped
       AND attgenerated = '';
    PERFORM set_config('mailhook.keep_claims', 'on', true);
    -- Rows of the week that came before its partition wait in the default partition, and
    -- a partition cannot be created while the default one holds rows of its range.
    EXECUTE format('CREATE TEMP TABLE mh_moving ON COMMIT DROP AS SELECT %s FROM mh_event_claims_default WITH NO DATA', cols);
    EXECUTE format('WITH m AS (DELETE FROM mh_event_claims_default WHERE claim_day >= %L AND claim_day < %L RETURNING %s)'
                   ' INSERT INTO mh_moving SELECT * FROM m', w, w + 7, cols);
    GET DIAGNOSTICS moved = ROW_COUNT;
    EXECUTE format('CREATE TABLE %I PARTITION OF mh_event_claims FOR VALUES FROM (%L) TO (%L)',
                   part, w, w + 7);
    IF moved > 0 THEN
        EXECUTE format('INSERT INTO mh_event_claims (%s) SELECT %s FROM mh_moving', cols, cols);
    END IF;
    DROP TABLE mh_moving;
    PERFORM set_config('mailhook.keep_claims', 'off', true);
    RETURN true;
END $$;
