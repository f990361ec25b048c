-- The event log loses its index on (raw_topic, raw_partition, raw_offset).
--
-- It served the claim statement while the claim was the event log's row (0001-0007):
-- reading back which record claims an event. Since 0008 that is mh_claims's job, and
-- nothing reads the event log by its raw record any more, so the index only cost every
-- stored event one more b-tree entry, written and kept. The columns stay: the API shows
-- an event's raw record, and an ad-hoc search by it is a scan of one week's partition.
--
-- Dropping the parent index drops each partition's with it.

DROP INDEX IF EXISTS mh_event_claims_raw;
