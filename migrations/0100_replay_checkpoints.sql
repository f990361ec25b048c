-- Replays (`mailhook replay`, docs/replay.md): one row per replay.
--
-- `spec` is the replay's definition, fixed when it is created so a resume covers exactly
-- the same records: raw topic, per-partition [start, end) offsets, filters, target
-- topics, whether suppression effects apply. `progress` holds the totals so far and the
-- next offset per partition as of the last committed batch. The authoritative position
-- is the committed offsets of the Kafka consumer group mailhook-replay-<replay_id>,
-- committed inside the same Kafka transaction as the batch's output; `progress` is what
-- operators read and the fallback when Kafka no longer holds those offsets.
CREATE TABLE mh_replay_checkpoints (
    replay_id  text        PRIMARY KEY,
    spec       jsonb       NOT NULL,
    progress   jsonb       NOT NULL DEFAULT '{}',
    status     text        NOT NULL DEFAULT 'running'
               CHECK (status IN ('running', 'interrupted', 'failed', 'done')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
