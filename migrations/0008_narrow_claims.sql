-- Narrow claims: the dedup decision in a table of its own, apart from the event log.
--
-- Until now the claim was the event log's row (mh_event_claims): one wide row per event
-- with the whole event and four indexes, partitioned by the week of its claim day. The
-- claim day being part of the key, every batch first had to find each event's day
-- (mh_claim_days: a lookup per partition and an advisory lock per event, taken in a
-- PL/pgSQL loop) and then read every claim back in a second statement.
--
-- mh_claims holds the decision alone: one row per event, keyed by a 16-byte digest of
-- (tenant, dedup scope, event_id) (mh_claim_key; the three are joined with a zero byte,
-- which no text value holds), with the raw record that claims it and its claim day. Not
-- partitioned, so the key alone finds a claim whatever its day. A batch's claim is one
-- statement (pipeline/dedup.c): INSERT … ON CONFLICT DO NOTHING into mh_claims, in key
-- order, and the event log rows of the events it inserted, in the same statement. Two
-- first deliveries of one event in flight at once meet on mh_claims's primary key: the
-- second insert waits for the first transaction and then does nothing, so no advisory
-- lock is needed; inserting in key order keeps two batches from waiting for each other
-- in a cycle. Only the events it did not insert (provider duplicates, a record processed
-- again) are read back, in a second statement.
--
-- The event log keeps its columns, partitions and indexes; the API, the soft-bounce
-- rules and retention read it as before. An event log row and its claim go together:
--   - deleting a log row (the default partition's trim, an operator) forgets its claim
--     (mh_event_claims_forget), except while maintenance moves rows between partitions;
--   - changing a log row's key columns moves its claim to the new key;
--   - dropping a week's partition leaves its claims to maintenance, which deletes the
--     claims of the dropped weeks in batches (store/maintain.c, the BRIN index on
--     claim_day).
--
-- Existing claims are copied from the event log. Workers and replays of the earlier
-- release claim in the event log alone and call mh_claim_days, which this removes: stop
-- them before migrating (docs/guarantees.md); one still running fails its claims and
-- retries them, it emits nothing.

LOCK TABLE mh_event_claims IN SHARE ROW EXCLUSIVE MODE;

CREATE FUNCTION mh_claim_key(p_tenant text, p_provider text, p_event_id text) RETURNS bytea
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN substr(sha256(convert_to(p_tenant, 'UTF8') || '\x00'::bytea
                         || convert_to(p_provider, 'UTF8') || '\x00'::bytea
                         || convert_to(p_event_id, 'UTF8')), 1, 16);

CREATE TABLE mh_claims (
    claim_key     bytea   PRIMARY KEY,
    claim_day     date    NOT NULL,
    raw_topic     text    NOT NULL,
    raw_partition integer NOT NULL,
    raw_offset    bigint  NOT NULL
);
CREATE INDEX mh_claims_claim_day ON mh_claims USING brin (claim_day);

INSERT INTO mh_claims (claim_key, claim_day, raw_topic, raw_partition, raw_offset)
SELECT mh_claim_key(tenant, provider, event_id), claim_day, raw_topic, raw_partition, raw_offset
  FROM mh_event_claims
ON CONFLICT DO NOTHING;

DROP FUNCTION mh_claim_day(text, text, text);
DROP FUNCTION mh_claim_days(jsonb);
DROP FUNCTION mh_claim_lock_key(text, text, text);

-- One event's claim day: that of its claim, else today (UTC), as a claim made now would
-- have (for tools and tests).
CREATE FUNCTION mh_claim_day(p_tenant text, p_provider text, p_event_id text) RETURNS date
    LANGUAGE sql STABLE
    RETURN coalesce((SELECT c.claim_day FROM mh_claims c
                      WHERE c.claim_key = mh_claim_key(p_tenant, p_provider, p_event_id)),
                    (now() AT TIME ZONE 'UTC')::date);

-- A deleted log row takes its claim with it, unless maintenance is moving the row to
-- another partition (mailhook.keep_claims, set for that transaction only).
CREATE FUNCTION mh_event_claims_forget() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('mailhook.keep_claims', true) IS DISTINCT FROM 'on' THEN
        DELETE FROM mh_claims
         WHERE claim_key = mh_claim_key(OLD.tenant, OLD.provider, OLD.event_id)
           AND claim_day = OLD.claim_day;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER mh_event_claims_forget AFTER DELETE ON mh_event_claims
    FOR EACH ROW EXECUTE FUNCTION mh_event_claims_forget();

-- A log row whose key changes (a migration like 0006) moves its claim to the new key.
CREATE FUNCTION mh_event_claims_rekey() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF (OLD.tenant, OLD.provider, OLD.event_id) IS DISTINCT FROM
       (NEW.tenant, NEW.provider, NEW.event_id) THEN
        DELETE FROM mh_claims
         WHERE claim_key = mh_claim_key(OLD.tenant, OLD.provider, OLD.event_id)
           AND claim_day = OLD.claim_day;
        INSERT INTO mh_claims (claim_key, claim_day, raw_topic, raw_partition, raw_offset)
        VALUES (mh_claim_key(NEW.tenant, NEW.provider, NEW.event_id), NEW.claim_day,
                NEW.raw_topic, NEW.raw_partition, NEW.raw_offset)
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER mh_event_claims_rekey AFTER UPDATE OF tenant, provider, event_id ON mh_event_claims
    FOR EACH ROW EXECUTE FUNCTION mh_event_claims_rekey();

-- As 0002's, with the rows it moves out of the default partition keeping their claims.
CREATE OR REPLACE FUNCTION mh_event_claims_create_partition(d date) RETURNS boolean
    LANGUAGE plpgsql AS $$
DECLARE
    w date := mh_claim_week(d);
    part text := format('mh_event_claims_w%s', to_char(w, 'YYYYMMDD'));
    cols text := 'tenant, provider, event_id, claim_day, raw_topic, raw_partition, raw_offset,'
                 ' event_type, recipient, message_id, occurred_at, claimed_at, event';
    moved bigint;
BEGIN
    IF to_regclass(part) IS NOT NULL THEN
        RETURN false;
    END IF;
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
