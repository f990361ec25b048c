-- Dedup scope: claims of generic providers keyed per source.
--
-- A claim's key is (tenant, provider, event_id), and until now `provider` was the
-- provider's name. The ids of the generic providers `hmac` and `standard` are unique
-- only per sender, and one tenant may have several senders of one generic provider,
-- each numbering its events its own way: keyed by provider, they swallowed each other's
-- events. So the `provider` column now holds the claim's *dedup scope*
-- (shared/include/mailhook/dedup_scope.h): the provider's name for a provider with a
-- platform of its own, `provider/source` for a provider marked dedup_per_source
-- (hmac, standard). The event log, the API and `mailhook events` are unchanged: they
-- return the stored event, which keeps its own provider, and the log's cursor
-- (log_at, tenant, provider, event_id) stays unique. Lock keys and mh_claim_days take
-- the scope as they took the name. No column, index or partition changes.
--
-- This converts the existing claims of those providers to their scope, taken from the
-- stored event's `source`, so an event claimed before the upgrade and delivered again
-- after it is still a duplicate. A converted row keeps its partition (claim_day is not
-- touched). A provider marked dedup_per_source later needs a migration like this one.
--
-- The table is locked against writes for the conversion (reads go on), so no claim is
-- inserted under either key meanwhile. Where a claim under the new key already exists
-- (workers of this release ran before the migration), that claim is the one the
-- workers use, and the old-key row is dropped rather than converted into a second row
-- of the same event. Running this again changes nothing: converted rows hold a '/',
-- which no provider's name has. Workers and replays of the earlier release key these
-- providers' claims by name: stop them before migrating (docs/guarantees.md).

LOCK TABLE mh_event_claims IN SHARE ROW EXCLUSIVE MODE;

DELETE FROM mh_event_claims o
 WHERE o.provider IN ('hmac', 'standard')
   AND EXISTS (SELECT 1 FROM mh_event_claims n
                WHERE n.tenant = o.tenant
                  AND n.provider = o.provider || '/' || coalesce(o.event ->> 'source', '')
                  AND n.event_id = o.event_id);

UPDATE mh_event_claims
   SET provider = provider || '/' || coalesce(event ->> 'source', '')
 WHERE provider IN ('hmac', 'standard');
