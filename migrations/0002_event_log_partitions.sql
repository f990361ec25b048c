-- The event log (mh_event_claims) partitioned by week, so retention drops whole weeks.
--
-- The partition key is part of the primary key, so it must be the same for every
-- delivery of one event, or two deliveries would not collide and dedup would break.
-- Nothing in an event both identifies it and dates it: the event id is the identity,
-- and occurred_at may differ between copies that carry the same provider id. So
-- `claim_day` is the UTC day the event was *first claimed*, and every later delivery
-- finds that day (mh_claim_days: one index probe per partition, which is why the
-- partitions are weeks, not days) and collides on the same key. Dedup state is kept for
-- the retention window after an event was first seen, which is what a provider's
-- retry horizon is measured against.
--
-- Rows claimed while their week had no partition (maintenance not running) land in the
-- default partition; maintenance (mh_event_claims_create_partition,
-- mh_event_claims_drop_before; `mailhook maintain` and mailhook-api's timer) creates the
-- coming weeks' partitions, moving such rows into them, and drops the partitions whose
-- every day left the window. See docs/suppression.md, "Retention".
--
-- `log_at` is the event's place in the event log: occurred_at, or the claim time for an
-- event without one.

ALTER TABLE mh_event_claims RENAME TO mh_event_claims_0001;
ALTER TABLE mh_event_claims_0001 RENAME CONSTRAINT mh_event_claims_pkey TO mh_event_claims_0001_pkey;
DROP INDEX mh_event_claims_raw;
DROP INDEX mh_event_claims_recipient;
DROP INDEX mh_event_claims_message;
DROP INDEX mh_event_claims_claimed_at;

CREATE TABLE mh_event_claims (
    tenant        text        NOT NULL,
    provider      text        NOT NULL,
    event_id      text        NOT NULL,
    claim_day     date        NOT NULL,
    raw_topic     text        NOT NULL,
    raw_partition integer     NOT NULL,
    raw_offset    bigint      NOT NULL,
    event_type    text        NOT NULL,
    recipient     text,
    message_id    text,
    occurred_at   timestamptz,
    claimed_at    timestamptz NOT NULL DEFAULT now(),
    event         jsonb       NOT NULL,
    log_at        timestamptz GENERATED ALWAYS AS (coalesce(occurred_at, claimed_at)) STORED,
    PRIMARY KEY (tenant, provider, event_id, claim_day)
) PARTITION BY RANGE (claim_day);

CREATE TABLE mh_event_claims_default PARTITION OF mh_event_claims DEFAULT;

CREATE INDEX mh_event_claims_raw ON mh_event_claims (raw_topic, raw_partition, raw_offset);
CREATE INDEX mh_event_claims_recipient ON mh_event_claims (recipient, occurred_at);
CREATE INDEX mh_event_claims_message ON mh_event_claims (message_id);
CREATE INDEX mh_event_claims_log ON mh_event_claims (log_at, tenant, provider, event_id);

-- The Monday (UTC weeks) of the week day d is in: the lower bound of its partition.
CREATE FUNCTION mh_claim_week(d date) RETURNS date
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN d - (extract(isodow FROM d)::integer - 1);

CREATE FUNCTION mh_claim_lock_key(p_tenant text, p_provider text, p_event_id text) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN hashtextextended(p_tenant || '/' || p_provider || '/' || p_event_id, 7244117155150352004);

-- The claim day of each event of a batch: that of its existing claim, else today (UTC).
-- keys: [{"idx", "tenant", "provider", "event_id"}]. Events found nowhere take a
-- transaction-level advisory lock (in key order, so two batches never wait for each
-- other in a cycle) and are looked up again: of two first deliveries in flight at once,
-- the second waits for the first to commit and then finds its claim — without the lock
-- they could pick different days across midnight and both claim the event. VOLATILE, so
-- the second lookup sees what committed while it waited.
CREATE FUNCTION mh_claim_days(keys jsonb) RETURNS TABLE (idx integer, claim_day date)
    LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    today date := (now() AT TIME ZONE 'UTC')::date;
    found jsonb;
    k bigint;
BEGIN
    SELECT coalesce(jsonb_object_agg(f.idx::text, f.day), '{}') INTO found
      FROM (SELECT x.idx,
                   (SELECT c.claim_day FROM mh_event_claims c
                     WHERE c.tenant = x.tenant AND c.provider = x.provider
                       AND c.event_id = x.event_id LIMIT 1) AS day
              FROM jsonb_to_recordset(keys) AS x(idx integer, tenant text, provider text,
                                                 event_id text)) f
     WHERE f.day IS NOT NULL;
    FOR k IN
        SELECT DISTINCT mh_claim_lock_key(x.tenant, x.provider, x.event_id) AS lk
          FROM jsonb_to_recordset(keys) AS x(idx integer, tenant text, provider text,
                                             event_id text)
         WHERE NOT found ? x.idx::text
         ORDER BY lk
    LOOP
        PERFORM pg_advisory_xact_lock(k);
    END LOOP;
    RETURN QUERY
        SELECT x.idx, coalesce((found ->> x.idx::text)::date,
                               (SELECT c.claim_day FROM mh_event_claims c
                                 WHERE c.tenant = x.tenant AND c.provider = x.provider
                                   AND c.event_id = x.event_id LIMIT 1),
                               today)
          FROM jsonb_to_recordset(keys) AS x(idx integer, tenant text, provider text,
                                             event_id text);
END $$;

-- One event's claim day, as mh_claim_days decides it (for tools and tests).
CREATE FUNCTION mh_claim_day(p_tenant text, p_provider text, p_event_id text) RETURNS date
    LANGUAGE sql VOLATILE
    RETURN (SELECT d.claim_day FROM mh_claim_days(jsonb_build_array(jsonb_build_object(
                'idx', 0, 'tenant', p_tenant, 'provider', p_provider, 'event_id', p_event_id))) d);

-- Creates the partition of the week day d is in unless it exists; true when it did.
-- Every column but the generated log_at is moved.
CREATE FUNCTION mh_event_claims_create_partition(d date) RETURNS boolean
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
    RETURN true;
END $$;

-- Drops the week partitions whose every day is before cutoff; returns their names.
CREATE FUNCTION mh_event_claims_drop_before(cutoff date) RETURNS SETOF text
    LANGUAGE plpgsql AS $$
DECLARE
    part text;
BEGIN
    FOR part IN
        SELECT c.relname FROM pg_inherits i
          JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'mh_event_claims'::regclass
           AND c.relname ~ '^mh_event_claims_w[0-9]{8}$'
           AND to_date(substr(c.relname, 18), 'YYYYMMDD') + 7 <= cutoff
         ORDER BY c.relname
    LOOP
        EXECUTE format('DROP TABLE %I', part);
        RETURN NEXT part;
    END LOOP;
END $$;

-- The default window (30 days back, 7 ahead) from the start; maintenance adjusts it.
SELECT mh_event_claims_create_partition(d::date)
  FROM generate_series(mh_claim_week((now() AT TIME ZONE 'UTC')::date - 30),
                       (now() AT TIME ZONE 'UTC')::date + 7, interval '7 days') AS d;

INSERT INTO mh_event_claims (tenant, provider, event_id, claim_day, raw_topic, raw_partition,
                             raw_offset, event_type, recipient, message_id, occurred_at,
                             claimed_at, event)
SELECT tenant, provider, event_id, (claimed_at AT TIME ZONE 'UTC')::date, raw_topic, raw_partition,
       raw_offset, event_type, recipient, message_id, occurred_at, claimed_at, event
  FROM mh_event_claims_0001;

DROP TABLE mh_event_claims_0001;
