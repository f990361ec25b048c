"""Which raw partition an acknowledged webhook lands on. mailhook-ingest's producer takes
the raw topic's partitions in turn, 10 ms each, so the records of concurrent requests
share one record batch, while over time every partition gets its share; the record key
stays the request id. `[kafka] partitioner` replaces that with librdkafka's own."""

from __future__ import annotations

import json
import socket
import time

import helpers
from test_pipeline import uid, unique_bounce

PARTITIONS = 4
BURSTS = 20
BURST = 8


def _request(src: dict, body: dict) -> bytes:
    data = json.dumps(body).encode()
    lines = ["POST /v1/webhooks/ivymail HTTP/1.1", "Host: mailhook",
             "Content-Type: application/json", f"Content-Length: {len(data)}"]
    lines += [f"{k}: {v}" for k, v in helpers.signature_headers(src, data).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


def _bursts(port: int, src: dict, tag: str) -> list[list[str]]:
    """BURSTS times: BURST requests written at once on BURST open connections; the
    request ids of each burst's 200s."""
    rid = uid()
    socks = [socket.create_connection(("127.0.0.1", port), timeout=15) for _ in range(BURST)]
    out = []
    try:
        for b in range(BURSTS):
            reqs = [_request(src, unique_bounce(f"{tag}{b}.{i}.{rid}@example.com",
                                                f"{tag}-{rid}-{b}-{i}")) for i in range(BURST)]
            for s, r in zip(socks, reqs):
                s.sendall(r)
            ids = []
            for s in socks:
                buf = b""
                while b"request_id" not in buf or not buf.endswith(b"}\n"):
                    chunk = s.recv(65536)
                    assert chunk, buf
                    buf += chunk
                assert buf.startswith(b"HTTP/1.1 200"), buf
                ids.append(json.loads(buf.split(b"\r\n\r\n", 1)[1])["request_id"])
            out.append(ids)
            time.sleep(0.01)  # the next burst in a later window
    finally:
        for s in socks:
            s.close()
    return out


def _partitions_of_bursts(mailhook, tmp_path, name: str, kafka: dict) -> tuple[list[set[int]], str]:
    port = helpers.free_port()
    raw = f"{mailhook.topics['raw']}.{name}"
    helpers.create_topics({raw: PARTITIONS}, mailhook.brokers)
    sections = json.loads(json.dumps(mailhook.sections))
    sections["ingest"].update({"listen": f"127.0.0.1:{port}", "raw_topic": raw})
    sections["kafka"].update(kafka)
    path = tmp_path / f"{name}.ini"
    helpers.write_ini(path, sections)
    proc = mailhook.start_ingest(f"ingest-{name}", config=path, url=f"http://127.0.0.1:{port}")
    try:
        bursts = _bursts(port, mailhook.sources["ivymail"], name)
        records = helpers.consume(raw, timeout=30, brokers_=mailhook.brokers)
        where = {r.key: r.partition for r in records}
        assert all(i in where for b in bursts for i in b), "a 200 without its raw record"
        log = proc.log.read_text()
    finally:
        assert proc.stop(timeout=15) == 0, proc.tail()
        helpers.delete_topics([raw], mailhook.brokers)
    return [{where[i] for i in b} for b in bursts], log


def test_concurrent_records_share_a_partition_and_every_partition_gets_some(mailhook, tmp_path):
    spread, log = _partitions_of_bursts(mailhook, tmp_path, "sticky", {})
    assert "kafka producer: partitions taken in turn, 10 ms each" in log
    # A burst arrives within a few ms: most bursts fall within one 10 ms window. (With
    # the key's hash, 8 records on one of 4 partitions would happen once in 16,000.)
    whole = sum(1 for s in spread if len(s) == 1)
    assert whole >= BURSTS // 2, spread
    # The bursts over time, sent one after the other, use every partition.
    assert set().union(*spread) == set(range(PARTITIONS)), spread


def test_a_kafka_partitioner_replaces_the_turns(mailhook, tmp_path):
    spread, log = _partitions_of_bursts(mailhook, tmp_path, "hashed",
                                        {"partitioner": "murmur2_random"})
    assert "partitions taken in turn" not in log
    # Random request ids hashed: the records of a burst spread over the partitions.
    assert sum(1 for s in spread if len(s) > 1) >= BURSTS // 2, spread

