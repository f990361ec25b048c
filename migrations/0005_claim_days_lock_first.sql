-- mh_claim_days, one lookup instead of two.
--
-- The version of 0002 looked every event up, locked the ones it did not find and looked
-- those up again: for a batch of new events (the usual case) that is two index probes
-- per partition and event. This one takes the transaction-level advisory lock of every
-- event of the batch first (in key order, as before, so two batches never wait for each
-- other in a cycle) and then looks each up once, in a statement of its own, so it sees
-- every claim committed before the locks were granted. What it decides is the same: an
-- event's existing claim day, else today; of two first deliveries in flight at once the
-- second waits for the first to commit and finds its claim. The one difference is that a
-- batch now also locks events that already have a claim (a provider's duplicates), so
-- two workers holding copies of one event take turns; they could not decide differently
-- anyway. A worker transaction still holds at most one such lock per event of its batch.
CREATE OR REPLACE FUNCTION mh_claim_days(keys jsonb) RETURNS TABLE (idx integer, claim_day date)
    LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    today date := (now() AT TIME ZONE 'UTC')::date;
    k bigint;
BEGIN
    FOR k IN
        SELECT DISTINCT mh_claim_lock_key(x.tenant, x.provider, x.event_id) AS lk
          FROM jsonb_to_recordset(keys) AS x(idx integer, tenant text, provider text,
                                             event_id text)
         ORDER BY lk
    LOOP
        PERFORM pg_advisory_xact_lock(k);
    END LOOP;
    RETURN QUERY
        SELECT x.idx, coalesce((SELECT c.claim_day FROM mh_event_claims c
                                 WHERE c.tenant = x.tenant AND c.provider = x.provider
                                   AND c.event_id = x.event_id LIMIT 1),
                               today)
          FROM jsonb_to_recordset(keys) AS x(idx integer, tenant text, provider text,
                                             event_id text);
END $$;
