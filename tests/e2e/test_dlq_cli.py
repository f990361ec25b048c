"""`mailhook dlq`: the dead letters with their source, raw record, reason and request id,
newest first, and the replay range that re-runs exactly their raw records."""

from __future__ import annotations

import json

from test_pipeline import uid


def _dead_letters(mailhook, n: int) -> tuple[list[tuple[bytes, str]], str]:
    """Posts n signed bodies no parser accepts; once the workers have dead-lettered all of
    them, returns (body, request id) of each and the dead-letter topic's offsets before
    them ("P:O,...")."""
    dlq_before = mailhook.end_offsets("dlq")
    posted = []
    for i in range(n):
        body = b'{"event": "bounced", "message_id": "dlq-%s-%d", oops' % (uid().encode(), i)
        r = mailhook.post("ivymail", body)
        assert r.status_code == 200, r.text
        posted.append((body, r.headers["X-Request-Id"]))
    dead = mailhook.consume("dlq", from_offsets=dlq_before, expect_n=n, timeout=60)
    assert len(dead) == n
    return posted, ",".join(f"{p}:{o}" for p, o in sorted(dlq_before.items()))


def test_dlq_lists_reason_source_and_raw_record(mailhook):
    posted, _ = _dead_letters(mailhook, 3)
    out = json.loads(mailhook.cli("dlq", "--since", "10m", "--source", "ivymail", "--body",
                                  "--json").stdout)
    by_rid = {item.get("request_id"): item for item in out["items"]}
    for body, rid in posted:
        item = by_rid[rid]
        assert item["source"] == "ivymail" and item["provider"] == "ivymail"
        assert "invalid JSON" in item["reason"]
        assert item["stage"] == "parse"
        assert item["raw_topic"] == mailhook.topics["raw"]
        assert item["body"].encode() == body
        assert item["body_bytes"] == len(body)
        # The raw record it names is the request's, byte for byte.
        raw = mailhook.consume("raw", from_offsets={item["raw_partition"]: item["raw_offset"]},
                               timeout=20)
        first = next(r for r in raw if r.partition == item["raw_partition"])
        assert first.offset == item["raw_offset"] and first.raw_value == body
    times = [i["time"] for i in out["items"]]
    assert times == sorted(times, reverse=True), "not newest first"
    assert out["total"] >= 3

    # Another source's filter leaves them out; --limit keeps the newest.
    other = json.loads(mailhook.cli("dlq", "--since", "10m", "--source", "maildog",
                                    "--json").stdout)
    assert not {i.get("request_id") for i in other["items"]} & set(by_rid)
    newest = json.loads(mailhook.cli("dlq", "--since", "10m", "--limit", "1", "--json").stdout)
    assert len(newest["items"]) == 1 and newest["items"][0]["time"] == times[0]


def test_dlq_prints_a_replay_range_that_covers_them(mailhook):
    posted, dlq_before = _dead_letters(mailhook, 2)
    rids = {rid for _, rid in posted}
    table = mailhook.cli("dlq", "--from-offsets", dlq_before)
    text = table.stdout.decode()
    assert text.splitlines()[0].split() == ["time", "source", "provider", "raw", "reason",
                                           "request_id"]
    assert len(text.splitlines()) == 3 and all(rid in text for rid in rids)
    hint = table.stderr.decode()
    out = json.loads(mailhook.cli("dlq", "--from-offsets", dlq_before, "--json").stdout)
    assert {i["request_id"] for i in out["items"]} == rids
    assert f"mailhook replay {out['replay']} --to-topic" in hint

    # That range re-runs exactly their raw records: a dry-run replay finds the two dead
    # letters and nothing else.
    args = out["replay"].split()
    assert args[0] == "--from-offsets" and args[2] == "--until"
    summary = json.loads(mailhook.cli("replay", *args, "--dry-run", "--json",
                                      "--no-progress").stdout)
    assert summary["records"] == 2 and summary["dead_letters"] == 2, summary
