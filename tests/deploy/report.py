"""The ok / FAIL / skip lines of the deployment checks, and running a command."""

from __future__ import annotations

import contextlib
import subprocess
from typing import Any, Iterator


class Report:
    def __init__(self) -> None:
        self.counts = {"ok": 0, "FAIL": 0, "skip": 0}

    def _line(self, status: str, name: str, detail: str = "") -> None:
        self.counts[status] += 1
        print(f"{status:<4} {name}{': ' + detail if detail else ''}", flush=True)

    def ok(self, name: str, detail: str = "") -> None:
        self._line("ok", name, detail)

    def fail(self, name: str, detail: str) -> None:
        self._line("FAIL", name, detail)

    def skip(self, name: str, why: str) -> None:
        self._line("skip", name, why)

    def check(self, name: str, problems: list[str], detail: str = "") -> bool:
        """ok when problems is empty, else one FAIL naming them all."""
        if problems:
            self.fail(name, "; ".join(problems))
            return False
        self.ok(name, detail)
        return True

    def summary(self) -> None:
        c = self.counts
        print(f"checks.py: {c['ok']} passed, {c['FAIL']} failed, {c['skip']} skipped", flush=True)


R = Report()


@contextlib.contextmanager
def guard(name: str) -> Iterator[None]:
    """A check that crashes is a failed check, not a crashed script."""
    try:
        yield
    except Exception as e:  # noqa: BLE001 - report whatever went wrong
        R.fail(name, f"{type(e).__name__}: {e}")


def run(argv: list[str], **kw: Any) -> subprocess.CompletedProcess:
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 60)
    if "input" not in kw:
        kw["stdin"] = subprocess.DEVNULL
    return subprocess.run(argv, **kw)
