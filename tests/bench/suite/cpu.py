"""CPU time of the processes a measurement involves, read from /proc: a worker (or any
pid), the local PostgreSQL (the postmaster with its ended children and its live ones, so
a backend that exits during the measurement still counts) and the local Kafka broker(s).
Dividing by the records processed gives each one's CPU per record; their sum against
the machine's cores says how near the whole pipeline is to what the machine can do."""

from __future__ import annotations

import os
import subprocess

TICK = os.sysconf("SC_CLK_TCK")


def _pgrep(args: list[str]) -> list[int]:
    out = subprocess.run(["pgrep", *args], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def seconds(pid: int, children: bool = False) -> float:
    """utime + stime of pid (and of its ended, waited-for children), in seconds; 0 when
    it is gone."""
    try:
        f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(f[11]) + int(f[12]) + (int(f[13]) + int(f[14]) if children else 0)
    return ticks / TICK


class Sampler:
    """CPU seconds of the given pids, the local PostgreSQL and the Kafka broker(s), for a
    measurement that samples often: the postmaster and the broker are looked up once and
    the postmaster's live children are read from /proc, so a sample costs file reads, not
    pgrep processes that would take CPU from the processes measured. A part is None when
    no such local process runs (an external stack)."""

    def __init__(self, pids: list[int]):
        self.pids = pids
        master = _pgrep(["-o", "-x", "postgres"])
        self.master = master[0] if master else None
        self.kafka_pids = _pgrep(["-f", "kafka.Kafka"])

    def _postgres(self) -> float | None:
        m = self.master
        if m is None:
            return None
        try:
            kids = [int(x) for x in open(f"/proc/{m}/task/{m}/children").read().split()]
        except OSError:
            kids = _pgrep(["-P", str(m)])
        return seconds(m, True) + sum(seconds(p) for p in kids)

    def snapshot(self) -> dict:
        return {"processes": sum(seconds(p) for p in self.pids), "postgres": self._postgres(),
                "kafka": sum(seconds(p) for p in self.kafka_pids) if self.kafka_pids else None}


def delta(before: dict, after: dict) -> dict:
    return {k: (after[k] - before[k] if before[k] is not None and after[k] is not None else None)
            for k in before}
