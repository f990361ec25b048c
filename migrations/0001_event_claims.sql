-- Dedup claims and the event log.
--
-- One row per distinct event (tenant, provider, event_id). The row's raw_* columns are
-- its *claim*: the raw record that first carried the event. A worker emits an event
-- only from the record that claims it, so provider duplicates are emitted once, and a
-- raw record processed again (after a crash, an aborted Kafka transaction or a replay)
-- emits exactly what it emitted the first time. `event` keeps the canonical event for
-- the event log and the API.
CREATE TABLE mh_event_claims (
    tenant        text        NOT NULL,
    provider      text        NOT NULL,
    event_id      text        NOT NULL,
    raw_topic     text        NOT NULL,
    raw_partition integer     NOT NULL,
    raw_offset    bigint      NOT NULL,
    event_type    text        NOT NULL,
    recipient     text,
    message_id    text,
    occurred_at   timestamptz,
    claimed_at    timestamptz NOT NULL DEFAULT now(),
    event         jsonb       NOT NULL,
    PRIMARY KEY (tenant, provider, event_id)
);

CREATE INDEX mh_event_claims_raw ON mh_event_claims (raw_topic, raw_partition, raw_offset);
CREATE INDEX mh_event_claims_recipient ON mh_event_claims (tenant, recipient, occurred_at);
CREATE INDEX mh_event_claims_message ON mh_event_claims (tenant, message_id);
CREATE INDEX mh_event_claims_claimed_at ON mh_event_claims (claimed_at);
