-- Suppression state per (tenant, address). docs/suppression.md describes the model.
--
-- Two last-writer-wins registers per address, each ordered by (occurred_at, event id):
--   the main one   state 'suppressed' (reason bounce | complaint | unsubscribe | manual)
--                  or 'lifted' (reason resubscribe | manual), written by events, the API
--                  and the CLI;
--   the temporary  the soft-bounce rule's suppression (temp_at .. temp_until).
-- The address is suppressed when the main register says so, or when the temporary
-- suppression has not expired and is newer than the last lift. Each register keeps the
-- write with the greatest (at, event_id) whatever the order writes arrive in, so every
-- order of the same events ends in the same row. A temporary suppression never hides an
-- older permanent one: a complaint stays a complaint after a soft-bounce period ends.
--
-- Writers hold a session advisory lock per address (mh_suppression_lock_key) from the
-- write until the new state is on the compacted topic, so the topic's last record per
-- key is the state here. `pending` marks a row whose state the topic may not have yet
-- (written by the API, the CLI or expiry); maintenance publishes those.

CREATE TABLE mh_suppressions (
    tenant        text        NOT NULL,
    address       text        NOT NULL,
    state         text        CHECK (state IN ('suppressed', 'lifted')),
    reason        text,
    at            timestamptz,
    event_id      text,
    source        text,
    temp_at       timestamptz,
    temp_until    timestamptz,
    temp_event_id text,
    pending       boolean     NOT NULL DEFAULT false,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, address)
);

CREATE INDEX mh_suppressions_pending ON mh_suppressions (tenant, address) WHERE pending;
CREATE INDEX mh_suppressions_temp_until ON mh_suppressions (temp_until) WHERE temp_until IS NOT NULL;
-- Retention forgets lifted addresses after the window (maintenance).
CREATE INDEX mh_suppressions_lifted ON mh_suppressions (updated_at) WHERE state IS DISTINCT FROM 'suppressed';

-- STABLE like to_char itself, so that PostgreSQL inlines it into queries.
CREATE FUNCTION mh_rfc3339(ts timestamptz) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');

CREATE FUNCTION mh_suppression_lock_key(p_tenant text, p_address text) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN hashtextextended(p_tenant || '/' || p_address, 7244117155150352002);

-- The addresses suppressed now, with the write that suppressed them.
CREATE VIEW mh_suppressions_current AS
SELECT tenant, address,
       CASE WHEN state = 'suppressed' THEN reason ELSE 'soft_bounce' END AS reason,
       CASE WHEN state = 'suppressed' THEN at ELSE temp_at END AS since,
       CASE WHEN state = 'suppressed' THEN NULL ELSE temp_until END AS expires_at,
       CASE WHEN state = 'suppressed' THEN event_id ELSE temp_event_id END AS source_event_id,
       CASE WHEN state = 'suppressed' THEN source ELSE 'soft_bounce_rule' END AS source
  FROM mh_suppressions
 WHERE state = 'suppressed'
    OR (temp_until > now()
        AND (state IS NULL OR (temp_at, temp_event_id) > (at, event_id)));

-- The state as mailhook publishes and serves it; NULL when the address is not suppressed.
CREATE FUNCTION mh_suppression_value(p_tenant text, p_address text) RETURNS json
    LANGUAGE sql STABLE
    RETURN (SELECT json_build_object('tenant', tenant, 'address', address, 'reason', reason,
                                      'since', mh_rfc3339(since),
                                      'expires_at', mh_rfc3339(expires_at),
                                      'source_event_id', source_event_id, 'source', source)
              FROM mh_suppressions_current
             WHERE tenant = p_tenant AND address = p_address);

-- One write into a register. p_op: 'suppress' | 'lift' (main register) or 'temp'
-- (p_until is when it ends). Returns true when the write won (the row changed).
CREATE FUNCTION mh_suppression_write(p_tenant text, p_address text, p_op text, p_reason text,
                                     p_at timestamptz, p_event_id text, p_source text,
                                     p_until timestamptz, p_pending boolean)
    RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    IF p_op = 'temp' THEN
        IF p_until <= now() THEN
            RETURN false; -- already over: nothing to suppress, nothing to announce
        END IF;
        INSERT INTO mh_suppressions AS s (tenant, address, temp_at, temp_until, temp_event_id,
                                          pending)
        VALUES (p_tenant, p_address, p_at, p_until, p_event_id, p_pending)
        ON CONFLICT (tenant, address) DO UPDATE
           SET temp_at = excluded.temp_at, temp_until = excluded.temp_until,
               temp_event_id = excluded.temp_event_id, pending = s.pending OR excluded.pending,
               updated_at = now()
         WHERE s.temp_at IS NULL
            OR (excluded.temp_at, excluded.temp_event_id) > (s.temp_at, s.temp_event_id);
    ELSIF p_op IN ('suppress', 'lift') THEN
        INSERT INTO mh_suppressions AS s (tenant, address, state, reason, at, event_id, source,
                                          pending)
        VALUES (p_tenant, p_address, CASE p_op WHEN 'suppress' THEN 'suppressed' ELSE 'lifted' END,
                p_reason, p_at, p_event_id, p_source, p_pending)
        ON CONFLICT (tenant, address) DO UPDATE
           SET state = excluded.state, reason = excluded.reason, at = excluded.at,
               event_id = excluded.event_id, source = excluded.source,
               pending = s.pending OR excluded.pending, updated_at = now()
         WHERE s.at IS NULL OR (excluded.at, excluded.event_id) > (s.at, s.event_id);
    ELSE
        RAISE EXCEPTION 'mh_suppression_write: unknown operation "%"', p_op;
    END IF;
    RETURN FOUND;
END $$;

-- An event counts toward the soft-bounce rule: a bounce that is not hard, or (when the
-- tenant counts them) a deferral.
CREATE FUNCTION mh_is_soft(p_type text, p_event jsonb, p_count_delays boolean) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN (p_type = 'email.bounced'
            AND coalesce(p_event -> 'bounce' ->> 'class', 'undetermined') <> 'hard')
        OR (p_count_delays AND p_type = 'email.delivery_delayed');

-- The soft-bounce rule for one new soft event of (tenant, address) at p_at: when at least
-- p_threshold distinct messages soft-bounced within p_window, with no delivery after the
-- first of them, the address is suppressed until p_duration after the newest one. The
-- window ends at the newest soft event of the address within p_window after p_at, so
-- soft bounces that arrive out of order still add up. Reads the event log, which holds
-- the events of the batch being claimed. Returns true when the temporary register changed.
CREATE FUNCTION mh_suppression_soft_rule(p_tenant text, p_address text, p_at timestamptz,
                                         p_event_id text, p_threshold integer,
                                         p_window interval, p_duration interval,
                                         p_count_delays boolean)
    RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    w timestamptz;
    delivered timestamptz;
    n integer;
BEGIN
    IF p_threshold <= 0 OR p_at IS NULL THEN
        RETURN false;
    END IF;
    SELECT max(occurred_at) INTO w
      FROM mh_event_claims
     WHERE recipient = p_address AND tenant = p_tenant
       AND occurred_at BETWEEN p_at AND p_at + p_window
       AND mh_is_soft(event_type, event, p_count_delays);
    w := coalesce(w, p_at);
    SELECT max(occurred_at) INTO delivered
      FROM mh_event_claims
     WHERE recipient = p_address AND tenant = p_tenant AND event_type = 'email.delivered'
       AND occurred_at BETWEEN w - p_window AND w;
    SELECT count(DISTINCT coalesce(message_id, event_id)) INTO n
      FROM mh_event_claims
     WHERE recipient = p_address AND tenant = p_tenant
       AND occurred_at > coalesce(delivered, '-infinity') AND occurred_at >= w - p_window
       AND occurred_at <= w
       AND mh_is_soft(event_type, event, p_count_delays);
    IF n < p_threshold THEN
        RETURN false;
    END IF;
    RETURN mh_suppression_write(p_tenant, p_address, 'temp', 'soft_bounce', w, p_event_id,
                                'soft_bounce_rule', w + p_duration, false);
END $$;

-- Applies a batch of effects and returns the current state of every address they touch
-- that has a register row: key '<tenant>/<address>', value mh_suppression_value (NULL: a
-- tombstone). Takes the session advisory lock of every touched address first, in key
-- order (two writers never wait for each other in a cycle); the caller releases them
-- once the states are on the compacted topic (pg_advisory_unlock_all). Only effects with
-- "fresh": true are applied; the others (events claimed before, processed again) only
-- have their address's current state returned.
--
-- effects: [{"tenant", "address", "op": suppress | lift | soft, "reason", "at",
--            "event_id", "source", "fresh", "threshold", "window_hours",
--            "duration_hours", "count_delays"}, ...]
CREATE FUNCTION mh_suppression_apply(effects jsonb, p_pending boolean DEFAULT false)
    RETURNS TABLE (key text, value json) LANGUAGE plpgsql AS $$
DECLARE
    k bigint;
    e record;
BEGIN
    FOR k IN
        SELECT DISTINCT mh_suppression_lock_key(x.tenant, x.address) AS lk
          FROM jsonb_to_recordset(effects) AS x(tenant text, address text)
         ORDER BY lk
    LOOP
        PERFORM pg_advisory_lock(k);
    END LOOP;

    FOR e IN
        SELECT * FROM jsonb_to_recordset(effects) AS x(tenant text, address text, op text,
               reason text, at timestamptz, event_id text, source text, fresh boolean,
               threshold integer, window_hours integer, duration_hours integer,
               count_delays boolean)
         WHERE x.fresh
         ORDER BY x.at, x.event_id
    LOOP
        IF e.op = 'soft' THEN
            PERFORM mh_suppression_soft_rule(e.tenant, e.address, e.at, e.event_id, e.threshold,
                                             make_interval(hours => e.window_hours),
                                             make_interval(hours => e.duration_hours),
                                             coalesce(e.count_delays, true));
        ELSE
            PERFORM mh_suppression_write(e.tenant, e.address, e.op, e.reason, e.at, e.event_id,
                                         e.source, NULL, p_pending);
        END IF;
    END LOOP;

    RETURN QUERY
        SELECT s.tenant || '/' || s.address, mh_suppression_value(s.tenant, s.address)
          FROM mh_suppressions s
          JOIN (SELECT DISTINCT x.tenant, x.address
                  FROM jsonb_to_recordset(effects) AS x(tenant text, address text)) t
            ON s.tenant = t.tenant AND s.address = t.address
         ORDER BY 1;
END $$;
