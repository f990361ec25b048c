"""Growth (--growth, long): one worker's records/s on a single-event backlog with 0, 1M
and 10M claims already stored, next to pgbench's claim statement on the same table. The
claims are pre-filled with generate_series in SQL (rows like the worker's: ivymail
delivery events, claimed over the default retention window, FILL_SQL), then VACUUM
ANALYZE and CHECKPOINT, as a table that grew would be. An uncounted drain warms the
broker first, as in the worker part.

Right after a checkpoint, the first change of each leaf of the claims' primary key writes
the whole page to the WAL; a server whose checkpoints are minutes apart runs most of the
time on leaves changed since the last one. So each larger size's first drain after the
fill's CHECKPOINT is a figure of its own, and the size's runs come after it. The CPU a
record of the worker and of PostgreSQL (all its processes: the checkpointer's and WAL
writer's writes too) over each size's runs tells a cost in CPU from one in waiting."""

from __future__ import annotations

import time

from common import TENANT, Bench, Figure, log

import worker as worker_part

# A claim table holds the claims of mailhook's retention window ([api] retention_days, 30
# days by default; maintenance deletes older ones), and the event log one partition a
# week of them. So the fill's claims are claimed on the 30 days up to today: 7 of every
# 30 today (the current week's partition with a whole week's share, as at the end of a
# week, its largest), the others on each of the 23 days before the week, in their weeks'
# partitions. Each is an ivymail delivery event, occurred up to a day before its claim.
RETENTION_DAYS = 30
WEEK_DAYS = 7
PARTITIONS_SQL = """
SELECT mh_event_claims_create_partition((now() AT TIME ZONE 'UTC')::date - d)
  FROM generate_series(0, %(days)s - 1) AS d
"""
FILL_SQL = """
WITH g AS (SELECT n, CASE WHEN n %% %(days)s < %(week)s THEN 0 ELSE (n %% %(days)s)::integer END AS ago
             FROM generate_series(%(lo)s::bigint, %(hi)s::bigint - 1) AS n),
c AS (INSERT INTO mh_claims (claim_key, claim_day, raw_topic, raw_partition, raw_offset)
SELECT mh_claim_key(%(tenant)s::text, 'ivymail', 'grow-' || n),
       (now() AT TIME ZONE 'UTC')::date - ago, 'mailhook.raw', n %% 6, n
  FROM g)
INSERT INTO mh_event_claims (tenant, provider, event_id, claim_day, raw_topic,
    raw_partition, raw_offset, event_type, recipient, message_id, occurred_at, claimed_at,
    source, event)
SELECT %(tenant)s::text, 'ivymail', 'grow-' || n, (now() AT TIME ZONE 'UTC')::date - ago,
       'mailhook.raw', n %% 6, n, 'email.delivered', 'g' || n || '@acme.example',
       'grow-' || n, now() - make_interval(days => ago, secs => n %% 86400),
       now() - make_interval(days => ago), 'ivymail',
       json_build_object('schema', 'mailhook.event.v1', 'type', 'email.delivered',
           'provider', 'ivymail', 'source', 'ivymail', 'tenant', %(tenant)s::text,
           'recipient', 'g' || n || '@acme.example', 'message_id', 'grow-' || n,
           'event_id', 'grow-' || n, 'provider_event', 'delivered',
           'raw', json_build_object('topic', 'mailhook.raw', 'partition', n %% 6, 'offset', n))
  FROM g
"""


def fill(bench: Bench, have: int, want: int) -> float:
    """Adds claims have..want-1; seconds it took (the insert and VACUUM ANALYZE)."""
    import psycopg
    t0 = time.monotonic()
    with psycopg.connect(bench.dsn(), autocommit=True) as conn:
        conn.execute(PARTITIONS_SQL, {"days": RETENTION_DAYS})
        step = 1_000_000
        for lo in range(have, want, step):
            conn.execute(FILL_SQL, {"tenant": TENANT, "lo": lo, "hi": min(lo + step, want),
                                    "days": RETENTION_DAYS, "week": WEEK_DAYS})
        conn.execute("VACUUM ANALYZE mh_event_claims")
        conn.execute("VACUUM ANALYZE mh_claims")
        # The fill's gigabytes written out now, not by a checkpoint in the middle of the
        # measurement: a table that grew over weeks has long been checkpointed.
        conn.execute("CHECKPOINT")
    return time.monotonic() - t0


def timed_drain(bench: Bench, sizes: dict, tag: str) -> dict:
    """One worker's drain of a fresh backlog of the growth size: worker_part.drain's
    records, seconds and CPU times."""
    cfg = bench.config(tag, batch_size=sizes["batch_size"])
    raw = cfg["topics"]["raw"]
    # The backlog is written once the worker holds the partitions, as in the worker
    # part: a backlog the worker finds at its start is partly taken before the first
    # commit, which the timing starts from. The worker is stopped meanwhile, so it does
    # not drain while the generator still writes.
    d = worker_part.drain(bench, cfg, 1, 0, sizes["drain_timeout"],
                          fill=lambda: worker_part.prefill(
                              bench, raw, sizes["growth_records"], 1, tag),
                          stop_for_fill=True)
    d["rate"] = d["records"] / d["seconds"] if d["seconds"] else 0.0
    return d


def measure(bench: Bench, sizes: dict, runs: int, claims: list[int]) -> tuple[list[Figure], dict]:
    figs: list[Figure] = []
    # The first size is measured first: on a broker that has just started it would pay
    # the broker's warm-up, which the other sizes do not.
    worker_part.warm_up(bench, sizes, part="growth")
    bench.empty_claims()  # the warm-up's claims are not the sizes' own
    have = 0
    firsts: list[Figure] = []
    cpu_figs: list[Figure] = []  # reported after the sizes, not compared with the smallest
    for n in sorted(claims):
        if n > have:
            secs = fill(bench, have, n)
            log(f"growth: {n} claims stored ({secs:.0f}s to add {n - have})")
            have = n
        backlog = (f"mailhook-worker on a backlog of {sizes['growth_records']} raw records "
                   f"written once it holds the partitions, {n} claims pre-filled by "
                   f"generate_series")
        if n > 0:
            first = Figure("growth", f"worker records/s, single-event, 1 worker, {n:,} claims "
                                     f"stored, first drain after the fill's CHECKPOINT",
                           "records/s", backlog + ", then CHECKPOINT")
            first.samples.append(timed_drain(bench, sizes, f"grow{n}-first")["rate"])
            log(f"growth {n}, first after the checkpoint: {first.samples[-1]:.0f} records/s")
            firsts.append(first)
        rec = Figure("growth", f"worker records/s, single-event, 1 worker, {n:,} claims stored",
                     "records/s", backlog + (", after the first drain" if n > 0 else ""),
                     ceiling_name="pgbench claim statement, same table, 1 client, rows/s")
        per_rec = {k: Figure("growth", f"CPU per record, {n:,} claims stored: {what}", "µs/record",
                             rec.command + ", /proc CPU times from the first commit to the last")
                   for k, what in (("processes", "mailhook-worker"),
                                   ("postgres", "PostgreSQL (all its processes)"))}
        for i in range(runs):
            # Each run's drain and pgbench add their rows: "0 claims" is emptied before
            # each of its runs, as the worker part's drains are; a larger size's later
            # runs see its fill plus what the runs before them added.
            if n == 0:
                bench.empty_claims()
            d = timed_drain(bench, sizes, f"grow{n}-{i}")
            rec.samples.append(d["rate"])
            for k, f in per_rec.items():
                if d["cpu"] and d["cpu"][k] is not None and d["records"]:
                    f.samples.append(d["cpu"][k] / d["records"] * 1e6)
            pcmd, rows = worker_part.pgbench(bench, 1, sizes["batch_size"], sizes["pgbench_seconds"])
            rec.ceiling_command = pcmd
            rec.ceiling_samples.append(rows)
            log(f"growth {n}: {rec.samples[-1]:.0f} records/s (pgbench {rows:.0f} rows/s)")
        figs.append(rec)
        for f in per_rec.values():
            if not f.samples:
                f.skip = "not measured: no local PostgreSQL, or the backlog went in one commit"
            cpu_figs.append(f)
    # Each size against the smallest of this run (figs[0]: the sizes go in order), as
    # the target reads it.
    base = Figure.stats(figs[0].samples) if figs else None
    figs += firsts
    for f in figs[1:]:
        got = Figure.stats(f.samples)
        if base and base["median"] and got:
            d = got["median"] / base["median"] - 1
            f.note = f"{d:+.0%} against {min(claims):,} claims stored"
    return figs + cpu_figs, {}
