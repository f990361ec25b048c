"""The services the end-to-end tests run against answer (no mailhook program needed)."""

import uuid

import helpers


def test_kafka_answers_metadata(stack):
    md = helpers.admin(stack.brokers).list_topics(timeout=10)
    assert md.brokers, "no broker in the cluster metadata"
    assert md.controller_id >= 0


def test_kafka_round_trip_read_committed(stack):
    """A committed transactional record is visible to a read_committed consumer and an
    aborted one is not: the broker is set up for mailhook's exactly-once path."""
    from confluent_kafka import Producer

    topic = f"mailhook.e2e-smoke-{uuid.uuid4().hex[:8]}"
    helpers.create_topics({topic: 1}, stack.brokers)
    try:
        start = helpers.end_offsets(topic, stack.brokers)
        p = Producer({"bootstrap.servers": stack.brokers,
                      "transactional.id": f"mailhook-e2e-smoke-{uuid.uuid4().hex}"})
        p.init_transactions(30)
        p.begin_transaction()
        p.produce(topic, b'{"n":1}', key=b"committed")
        p.commit_transaction(30)
        p.begin_transaction()
        p.produce(topic, b'{"n":2}', key=b"aborted")
        p.abort_transaction(30)
        got = helpers.consume(topic, from_offsets=start, timeout=20, brokers_=stack.brokers)
        assert [(r.key, r.value) for r in got] == [("committed", {"n": 1})]
    finally:
        helpers.delete_topics([topic], stack.brokers)


def test_postgres_answers(stack, pg):
    assert pg.execute("select 1").fetchone() == (1,)
    assert pg.execute("select current_setting('server_version_num')::int").fetchone()[0] >= 130000
