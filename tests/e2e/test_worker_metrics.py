"""mailhook-worker's /metrics and /healthz ([worker] metrics_listen, --metrics-listen):
its counters follow the batches it commits, its gauges its assignment and lag, and an
address it cannot use stops it with a clear error."""

from __future__ import annotations

import json
import re
import subprocess

import requests

import helpers
from test_pipeline import uid, unique_bounce

RAW_PARTITIONS = 3


def _metric(text: str, name: str, labels: str = "") -> float:
    m = re.search(rf"^{re.escape(name + labels)} ([0-9.e+-]+)$", text, re.M)
    assert m, f"{name}{labels} missing from /metrics:\n{text}"
    return float(m.group(1))


def _own_pipeline(mailhook, tmp_path, name: str) -> tuple[dict, dict]:
    """A raw topic, consumer group and output topics of this test's own, so the session's
    workers neither take this test's records nor give it theirs."""
    topics = {role: f"{mailhook.topics[role]}.{name}" for role in ("raw", "events", "dlq")}
    helpers.create_topics({topics["raw"]: RAW_PARTITIONS, topics["events"]: 1,
                           topics["dlq"]: 1}, mailhook.brokers)
    sections = json.loads(json.dumps(mailhook.sections))
    sections["ingest"].update({"listen": f"127.0.0.1:{helpers.free_port()}",
                               "raw_topic": topics["raw"]})
    sections["worker"].update({"group_id": f"{sections['worker']['group_id']}.{name}",
                               "raw_topic": topics["raw"], "events_topic": topics["events"],
                               "dlq_topic": topics["dlq"]})
    return sections, topics


def test_metrics_follow_the_batches(mailhook, tmp_path):
    sections, topics = _own_pipeline(mailhook, tmp_path, "metrics")
    port = helpers.free_port()
    base = f"http://127.0.0.1:{port}"
    sections["worker"]["metrics_listen"] = f"127.0.0.1:{port}"
    path = tmp_path / "metrics.ini"
    helpers.write_ini(path, sections)
    ingest_url = "http://" + sections["ingest"]["listen"]
    mailhook.start_ingest("ingest-metrics", config=path, url=ingest_url)
    worker = mailhook.start_worker(91, config=path)
    try:
        helpers.wait_for(lambda: helpers.http_get_ok(base + "/healthz"), 15,
                         what="worker /healthz")
        assert requests.get(base + "/healthz", timeout=5).json() == {"status": "ok"}
        assert f"metrics on 127.0.0.1:{port}" in worker.log.read_text()

        # Every partition of the raw topic is this worker's: it is alone in its group.
        helpers.wait_for(lambda: _metric(requests.get(base + "/metrics", timeout=5).text,
                                         "mailhook_worker_assigned_partitions") ==
                         RAW_PARTITIONS, 60, what="the worker's assignment")

        # 30 webhooks, 5 of them sent twice: 35 records, 30 events, 5 duplicates; one
        # unparseable body (signed, so ingest publishes it) goes to the dead letters.
        src = mailhook.sources["ivymail"]
        rid = uid()
        bodies = [unique_bounce(f"m{i}.{rid}@example.com", f"metrics-{rid}-{i}")
                  for i in range(30)]
        for body in bodies + bodies[:5]:
            r = helpers.post(ingest_url, "ivymail", body, helpers.signature_headers(src, body))
            assert r.status_code == 200, r.text
        poison = b'{"event": "bounced", "message_id": 12'
        r = helpers.post(ingest_url, "ivymail", poison, helpers.signature_headers(src, poison))
        assert r.status_code == 200, r.text

        def settled():
            text = requests.get(base + "/metrics", timeout=5).text
            return (_metric(text, "mailhook_worker_records_total") == 36 and
                    _metric(text, "mailhook_worker_lag_records") == 0) and text
        text = helpers.wait_for(settled, 60, what="the worker to commit 36 records")
        assert _metric(text, "mailhook_worker_events_emitted_total") == 30
        assert _metric(text, "mailhook_worker_duplicates_total") == 5
        # By source and type (the bounce- and complaint-rate alerts read these): the 30
        # bounces, not their duplicates; every other configured source and type at 0.
        by_type = "mailhook_worker_events_total"
        assert _metric(text, by_type, '{source="ivymail",type="email.bounced"}') == 30
        assert _metric(text, by_type, '{source="ivymail",type="email.delivered"}') == 0
        assert _metric(text, by_type, '{source="maildog",type="email.bounced"}') == 0
        assert _metric(text, by_type, '{source="ivymail",type="other"}') == 0
        assert sum(float(v) for v in re.findall(rf"^{by_type}{{[^}}]*}} ([0-9.]+)$", text, re.M)) \
            == 30
        assert _metric(text, "mailhook_worker_dead_letters_total") == 1
        assert _metric(text, "mailhook_worker_store_dead_letters_total") == 0  # a parse failure
        assert _metric(text, "mailhook_worker_batches_total") >= 1
        assert _metric(text, "mailhook_worker_transaction_aborts_total") == 0
        assert _metric(text, "mailhook_worker_stage_seconds_total", '{stage="claim"}') > 0
        assert _metric(text, "mailhook_worker_loop_age_seconds") < 5
        assert "# TYPE mailhook_worker_records_total counter" in text
        # Every committed batch is in the latency histogram; every 200 in the ingest's.
        assert (_metric(text, "mailhook_worker_batch_seconds_count") ==
                _metric(text, "mailhook_worker_batches_total"))
        assert _metric(text, "mailhook_worker_batch_seconds_bucket", '{le="+Inf"}') == \
            _metric(text, "mailhook_worker_batch_seconds_count")
        ingest_text = requests.get(ingest_url + "/metrics", timeout=5).text
        assert _metric(ingest_text, "mailhook_ingest_ack_seconds_count") == 36
        assert _metric(ingest_text, "mailhook_ingest_ack_seconds_sum") > 0
        # The ingest counts its answers per source: a wrong signature shows as that
        # source's 401.
        bad = helpers.post(ingest_url, "ivymail", bodies[0],
                           helpers.signature_headers(src, bodies[0], "not-the-secret"))
        assert bad.status_code == 401
        ingest_text = requests.get(ingest_url + "/metrics", timeout=5).text
        per_source = "mailhook_ingest_source_responses_total"
        assert _metric(ingest_text, per_source, '{source="ivymail",code="200"}') == 36
        assert _metric(ingest_text, per_source, '{source="ivymail",code="401"}') == 1
        assert _metric(ingest_text, per_source, '{source="maildog",code="200"}') == 0
        assert len(mailhook.consume(topics["events"], expect_n=30, settle=1)) == 30

        assert requests.post(base + "/metrics", timeout=5).status_code == 405
        assert requests.get(base + "/nope", timeout=5).status_code == 404
    finally:
        mailhook.procs["worker-91"].stop()
        mailhook.procs["ingest-metrics"].stop()
        helpers.delete_topics(topics.values(), mailhook.brokers)
    # The endpoint goes with the process.
    assert not helpers.http_get_ok(base + "/healthz")


def _drain_backlog(mailhook, tmp_path, sections: dict, group: str, worker: dict,
                   instance: int, records: int) -> str:
    """Runs a worker of its own group, with these [worker] settings, on the raw topic's
    backlog until it has committed every record; its /metrics text then."""
    port = helpers.free_port()
    own = json.loads(json.dumps(sections))
    own["worker"].update({"group_id": f"{own['worker']['group_id']}.{group}",
                          "metrics_listen": f"127.0.0.1:{port}", **worker})
    path = tmp_path / f"{group}.ini"
    helpers.write_ini(path, own)
    mailhook.start_worker(instance, config=path)
    try:
        def done():
            text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            return _metric(text, "mailhook_worker_records_total") == records and text
        return helpers.wait_for(lambda: helpers.http_get_ok(
            f"http://127.0.0.1:{port}/healthz") and done(), 90,
            what=f"the {group} worker to commit {records} records")
    finally:
        mailhook.procs[f"worker-{instance}"].stop()


def _own_ingest(mailhook, tmp_path, name: str) -> tuple[dict, dict, str]:
    """_own_pipeline with an ingest of its own running on it (process ingest-<name>):
    (sections, topics, the ingest's URL)."""
    sections, topics = _own_pipeline(mailhook, tmp_path, name)
    ingest_url = "http://" + sections["ingest"]["listen"]
    helpers.write_ini(tmp_path / "ingest.ini", sections)
    mailhook.start_ingest(f"ingest-{name}", config=tmp_path / "ingest.ini", url=ingest_url)
    return sections, topics, ingest_url


def _batches(text: str) -> float:
    return _metric(text, "mailhook_worker_batches_total")


def test_a_batch_closes_at_batch_max_bytes(mailhook, tmp_path):
    """[worker] batch_max_bytes bounds what a batch holds: with the smallest value and
    bodies over it, every record of a backlog is a batch of its own; a worker with the
    default takes the same backlog in far fewer batches."""
    sections, topics, ingest_url = _own_ingest(mailhook, tmp_path, "maxbytes")
    src = mailhook.sources["ivymail"]
    rid = uid()
    n = 12
    try:
        # The backlog is written before any worker runs, so a worker finds all of it.
        for i in range(n):
            body = dict(unique_bounce(f"b{i}.{rid}@example.com", f"maxbytes-{rid}-{i}"),
                        padding="x" * 1500)
            r = helpers.post(ingest_url, "ivymail", body, helpers.signature_headers(src, body))
            assert r.status_code == 200, r.text

        capped = _drain_backlog(mailhook, tmp_path, sections, "capped",
                                {"batch_max_bytes": 1024}, 92, n)
        assert _batches(capped) == n
        default = _drain_backlog(mailhook, tmp_path, sections, "default", {}, 93, n)
        assert _batches(default) < n / 2
    finally:
        mailhook.procs["ingest-maxbytes"].stop()
        helpers.delete_topics(topics.values(), mailhook.brokers)


def test_a_batch_closes_at_batch_max_events(mailhook, tmp_path):
    """[worker] batch_max_events bounds a batch by its parsed events: with 5, and
    webhooks of 3 events each, no batch holds more than two records once parsed (the
    parse stops after the second and the rest start the next batch, unparsed), where the
    default takes more at once; and every event of the split batches is emitted, once."""
    sections, topics, ingest_url = _own_ingest(mailhook, tmp_path, "maxevents")
    src = mailhook.sources["ivymail"]
    rid = uid()
    n, per = 12, 3
    try:
        for i in range(n):
            body = [unique_bounce(f"e{i}.{k}.{rid}@example.com", f"maxevents-{rid}-{i}-{k}")
                    for k in range(per)]
            r = helpers.post(ingest_url, "ivymail", body, helpers.signature_headers(src, body))
            assert r.status_code == 200, r.text

        capped = _drain_backlog(mailhook, tmp_path, sections, "capped",
                                {"batch_max_events": 5}, 94, n)
        assert _metric(capped, "mailhook_worker_batch_events_max") == 2 * per
        assert _metric(capped, "mailhook_worker_events_emitted_total") == n * per
        events = mailhook.consume(topics["events"], expect_n=n * per, settle=2)
        ids = [e.value["event_id"] for e in events]
        assert len(ids) == n * per and len(set(ids)) == n * per
        # The same backlog again, with the default, in a group of its own.
        default = _drain_backlog(mailhook, tmp_path, sections, "default", {}, 95, n)
        assert _metric(default, "mailhook_worker_batch_events_max") > 2 * per
    finally:
        mailhook.procs["ingest-maxevents"].stop()
        helpers.delete_topics(topics.values(), mailhook.brokers)


def test_metrics_listen_flag_overrides_the_config_and_a_taken_port_is_an_error(mailhook,
                                                                                tmp_path):
    sections, topics = _own_pipeline(mailhook, tmp_path, "metricsflag")
    taken = helpers.free_port()
    sections["worker"]["metrics_listen"] = f"127.0.0.1:{taken}"
    path = tmp_path / "flag.ini"
    helpers.write_ini(path, sections)
    flag_port = helpers.free_port()
    argv = [str(helpers.build_dir() / "mailhook-worker"), "--config", str(path),
            "--instance", "metrics-flag"]
    env = mailhook.env
    try:
        # The flag wins over the file: the worker serves on flag_port.
        p = subprocess.Popen(argv + ["--metrics-listen", f"127.0.0.1:{flag_port}"], env=env,
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
        try:
            helpers.wait_for(lambda: helpers.http_get_ok(f"http://127.0.0.1:{flag_port}/healthz"),
                             15, what="the --metrics-listen address")
            assert not helpers.http_get_ok(f"http://127.0.0.1:{taken}/healthz")

            # A second worker on the same address cannot serve it: it says so and exits.
            second = subprocess.run(argv[:-1] + ["metrics-flag-2", "--metrics-listen",
                                                 f"127.0.0.1:{flag_port}"],
                                    env=env, stdin=subprocess.DEVNULL, capture_output=True,
                                    timeout=30)
            assert second.returncode == 1
            assert f"cannot listen on 127.0.0.1:{flag_port}" in second.stderr.decode()

            bad = subprocess.run(argv[:-1] + ["metrics-flag-3", "--metrics-listen", "nowhere"],
                                 env=env, stdin=subprocess.DEVNULL, capture_output=True,
                                 timeout=30)
            assert bad.returncode == 1
            assert "metrics listen: expected host:port" in bad.stderr.decode()
            assert "producer ready" not in bad.stderr.decode()  # refused before Kafka
        finally:
            p.terminate()
            assert p.wait(15) == 0
    finally:
        helpers.delete_topics(topics.values(), mailhook.brokers)
