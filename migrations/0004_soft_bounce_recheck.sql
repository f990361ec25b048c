-- Deliveries and the soft-bounce rule, whatever order they arrive in.
--
-- A delivery that happened inside the window the soft-bounce rule counted, but arrives
-- after the rule suppressed the address, makes the rule count again
-- (mh_suppression_soft_recheck) and ends the temporary suppression when the threshold is
-- no longer met. mh_suppression_apply takes the new "reset" effect (email.delivered) and
-- drops it before locking unless the address is under a soft-bounce suppression, so the
-- many deliveries cost one index probe each. The counting moves into mh_soft_count,
-- shared by the rule and the recheck.

-- Distinct messages of (tenant, address) that soft-bounced within p_window up to w, after
-- the last delivery in that window (what the soft-bounce rule counts).
CREATE FUNCTION mh_soft_count(p_tenant text, p_address text, w timestamptz,
                              p_window interval, p_count_delays boolean)
    RETURNS integer LANGUAGE plpgsql STABLE AS $$
DECLARE
    delivered timestamptz;
    n integer;
BEGIN
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
    RETURN n;
END $$;

-- The soft-bounce rule for one new soft event of (tenant, address) at p_at: when at least
-- p_threshold distinct messages soft-bounced within p_window, with no delivery after the
-- first of them, the address is suppressed until p_duration after the newest one. The
-- window ends at the newest soft event of the address within p_window after p_at, so
-- soft bounces that arrive out of order still add up. Reads the event log, which holds
-- the events of the batch being claimed. Returns true when the temporary register changed.
CREATE OR REPLACE FUNCTION mh_suppression_soft_rule(p_tenant text, p_address text, p_at timestamptz,
                                         p_event_id text, p_threshold integer,
                                         p_window interval, p_duration interval,
                                         p_count_delays boolean)
    RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    w timestamptz;
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
    IF mh_soft_count(p_tenant, p_address, w, p_window, p_count_delays) < p_threshold THEN
        RETURN false;
    END IF;
    RETURN mh_suppression_write(p_tenant, p_address, 'temp', 'soft_bounce', w, p_event_id,
                                'soft_bounce_rule', w + p_duration, false);
END $$;

-- A delivery at p_at that arrives after the soft-bounce rule suppressed the address: when
-- it lies inside the window the rule counted, the count is taken again, and if it no
-- longer reaches the threshold the temporary suppression ends. So the outcome does not
-- depend on whether the delivery or the bounces arrived first. Returns true when the
-- temporary register changed.
CREATE FUNCTION mh_suppression_soft_recheck(p_tenant text, p_address text, p_at timestamptz,
                                            p_threshold integer, p_window interval,
                                            p_count_delays boolean)
    RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    s record;
BEGIN
    SELECT temp_at INTO s FROM mh_suppressions
     WHERE tenant = p_tenant AND address = p_address AND temp_until > now()
       FOR UPDATE;
    IF NOT FOUND OR p_at IS NULL OR p_at > s.temp_at OR p_at < s.temp_at - p_window THEN
        RETURN false;
    END IF;
    IF mh_soft_count(p_tenant, p_address, s.temp_at, p_window, p_count_delays) >= p_threshold THEN
        RETURN false;
    END IF;
    UPDATE mh_suppressions
       SET temp_at = NULL, temp_until = NULL, temp_event_id = NULL, updated_at = now()
     WHERE tenant = p_tenant AND address = p_address;
    RETURN true;
END $$;

-- Applies a batch of effects and returns the current state of every address they touch
-- that has a register row: key '<tenant>/<address>', value mh_suppression_value (NULL: a
-- tombstone). Takes the session advisory lock of every touched address first, in key
-- order (two writers never wait for each other in a cycle); the caller releases them
-- once the states are on the compacted topic (pg_advisory_unlock_all). Only effects with
-- "fresh": true are applied; the others (events claimed before, processed again) only
-- have their address's current state returned.
--
-- effects: [{"tenant", "address", "op": suppress | lift | soft | reset, "reason", "at",
--            "event_id", "source", "fresh", "threshold", "window_hours",
--            "duration_hours", "count_delays"}, ...]
CREATE OR REPLACE FUNCTION mh_suppression_apply(effects jsonb, p_pending boolean DEFAULT false)
    RETURNS TABLE (key text, value json) LANGUAGE plpgsql AS $$
DECLARE
    k bigint;
    e record;
BEGIN
    -- A delivery only matters to an address under a soft-bounce suppression: the others
    -- (nearly all deliveries) are dropped here, before any lock is taken.
    SELECT coalesce(jsonb_agg(x.e), '[]') INTO effects
      FROM jsonb_array_elements(effects) AS x(e)
     WHERE x.e ->> 'op' IS DISTINCT FROM 'reset'
        OR EXISTS (SELECT 1 FROM mh_suppressions s
                    WHERE s.tenant = x.e ->> 'tenant' AND s.address = x.e ->> 'address'
                      AND s.temp_until > now());
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
        ELSIF e.op = 'reset' THEN
            PERFORM mh_suppression_soft_recheck(e.tenant, e.address, e.at, e.threshold,
                                                make_interval(hours => e.window_hours),
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
