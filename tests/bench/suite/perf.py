"""perf record -g on a process during a measurement (--perf): the top symbols, so the
report says where the time went."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path


class Perf:
    def __init__(self, out: Path):
        self.out = out
        self.running: dict[str, subprocess.Popen] = {}
        self.tops: dict[str, str] = {}

    def start(self, name: str, pid: int) -> None:
        data = self.out / f"perf-{name}.data"
        self.running[name] = subprocess.Popen(
            ["perf", "record", "-g", "-F", "499", "-p", str(pid), "-o", str(data)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self, name: str) -> None:
        p = self.running.pop(name, None)
        if p is None:
            return
        p.send_signal(signal.SIGINT)
        try:
            p.wait(60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)
        data = self.out / f"perf-{name}.data"
        # By library first (where the time goes), then the top symbols.
        parts = []
        for sort, limit in (("dso", "2"), ("dso,symbol", "1.5")):
            r = subprocess.run(["perf", "report", "-i", str(data), "--stdio", "--no-children",
                                "-g", "none", "--sort", sort, "--percent-limit", limit],
                               capture_output=True, text=True, timeout=300)
            parts.append("\n".join(re.sub(r"(\s+-)+\s*$", "", ln).rstrip()
                                   for ln in r.stdout.splitlines()
                                   if ln.strip() and not ln.startswith("#")))
        top = "\n\n".join(parts)
        self.tops[name] = top
        (self.out / f"perf-{name}.txt").write_text(top + "\n")
