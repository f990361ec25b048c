-- An acceptance by the recipient's server resets the soft-bounce count like a delivery.
--
-- GetMailer's `email.sent` is "accepted by recipient's mail server", the SMTP acceptance
-- other providers report as their delivery; its `email.delivered` confirms the inbox,
-- which "not all mail servers report". Counting only email.delivered as a reset kept
-- a GetMailer address that soft-bounced on some messages and was accepted for others on
-- the road to a soft-bounce suppression. mh_is_reset names the events that reset the
-- count; supp_rule (shared/suppression_rules.c, sent_is_acceptance) sends the "reset"
-- effect for the same events, so a late acceptance rechecks a soft-bounce suppression.
-- The `provider` column holds the claim's dedup scope, which for GetMailer is its name.
-- Functions only: no table, index or row changes.

CREATE FUNCTION mh_is_reset(p_type text, p_provider text)
    RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT p_type = 'email.delivered' OR (p_type = 'email.sent' AND p_provider = 'getmailer')
$$;

CREATE OR REPLACE FUNCTION mh_soft_count(p_tenant text, p_address text, w timestamptz,
                                         p_window interval, p_count_delays boolean)
    RETURNS integer LANGUAGE plpgsql STABLE AS $$
DECLARE
    delivered timestamptz;
    n integer;
BEGIN
    SELECT max(occurred_at) INTO delivered
      FROM mh_event_claims
     WHERE recipient = p_address AND tenant = p_tenant
       AND event_type IN ('email.delivered', 'email.sent') AND mh_is_reset(event_type, provider)
       AND occurred_at BETWEEN w - p_window AND w;
    SELECT count(DISTINCT coalesce(message_id, event_id)) INTO n
      FROM mh_event_claims
     WHERE recipient = p_address AND tenant = p_tenant
       AND occurred_at > coalesce(delivered, '-infinity') AND occurred_at >= w - p_window
       AND occurred_at <= w
       AND mh_is_soft(event_type, event, p_count_delays);
    RETURN n;
END $$;
