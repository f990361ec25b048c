"""mailhook processes and the local Kafka/PostgreSQL, as the chaos test drives them.

Every process started here runs in its own session with its log in the run's folder,
and has a pid file under $MH_LOCAL/run/chaos so that tests/chaos/run can stop what a
killed harness left behind. Only processes started here are ever signalled.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIB_SH = ROOT / "deploy" / "local" / "lib.sh"
LOCAL = Path(os.environ.get("MH_LOCAL") or ROOT / ".local")
PID_DIR = LOCAL / "run" / "chaos"


def build_dir() -> Path:
    return Path(os.environ.get("MH_BUILD_DIR") or ROOT / "build")


def brokers() -> str:
    return os.environ.get("MAILHOOK_KAFKA_BROKERS") or \
        f"127.0.0.1:{os.environ.get('MH_KAFKA_PORT', '9092')}"


def pg_dsn() -> str:
    return os.environ.get("MAILHOOK_PG_DSN") or \
        f"postgresql://postgres@127.0.0.1:{os.environ.get('MH_PG_PORT', '5433')}/mailhook"


class Proc:
    """One mailhook program (ingest or a worker) that may be killed and started again."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path):
        self.name, self.argv, self.env, self.log = name, argv, env, log
        self.popen: subprocess.Popen | None = None
        self.down = False          # stopped on purpose: the supervisor leaves it alone
        self.starts = 0
        self.busy = threading.Lock()  # held by the fault acting on this process

    def start(self) -> "Proc":
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as logf:
            logf.write(f"--- start {time.strftime('%H:%M:%S')} {' '.join(self.argv)}\n".encode())
            logf.flush()
            self.popen = subprocess.Popen(self.argv, env=self.env, stdin=subprocess.DEVNULL,
                                          stdout=logf, stderr=subprocess.STDOUT,
                                          start_new_session=True)
        self.starts += 1
        self.down = False
        PID_DIR.mkdir(parents=True, exist_ok=True)
        self._pidfile().write_text(f"{self.popen.pid}\n")
        return self

    def _pidfile(self) -> Path:
        return PID_DIR / f"{os.getpid()}-{self.name}.pid"

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def returncode(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def kill9(self) -> None:
        """A crash: SIGKILL, reaped at once."""
        self.down = True
        if self.alive():
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(10)

    def terminate(self, timeout: float = 20.0) -> tuple[int | None, float]:
        """SIGTERM and wait; (exit status, seconds it took). SIGKILL after timeout."""
        self.down = True
        if not self.alive():
            return self.returncode(), 0.0
        t0 = time.monotonic()
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(10)
        took = time.monotonic() - t0
        self._pidfile().unlink(missing_ok=True)
        return self.popen.returncode, took

    def wait(self, timeout: float) -> int | None:
        """Waits for an exit already asked for; SIGKILL after timeout. The exit status."""
        try:
            self.popen.wait(max(timeout, 0.1))
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(10)
        self._pidfile().unlink(missing_ok=True)
        return self.popen.returncode

    def text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status == 200
    except Exception:
        return False


def wait_http(url: str, timeout: float, proc: Proc | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if http_ok(url):
            return True
        if proc is not None and not proc.alive():
            return False
        time.sleep(0.2)
    return False


def stack_call(*functions: str, timeout: float = 240.0) -> str:
    """Run deploy/local/lib.sh functions (mh_kafka_kill, mh_pg_up, ...) on the local stack.
    Raises RuntimeError with their output if one fails."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAILHOOK_KAFKA_BROKERS", "MAILHOOK_PG_DSN")}
    script = f'set -euo pipefail; source "{LIB_SH}"; ' + "; ".join(functions)
    p = subprocess.run(["bash", "-c", script], env=env, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"{'; '.join(functions)} failed:\n{p.stdout}")
    return p.stdout


def sanitizer_reports(procs: list[Proc]) -> list[str]:
    marks = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")
    return [p.name for p in procs if any(m in p.text() for m in marks)]


def drop_topics_and_database(brokers: str, topics: list[str], base_dsn: str, dbname: str,
                             log) -> None:
    """Deletes a run's topics and drops its database; a failure is logged, not raised
    (cleanup must not hide the run's own result)."""
    try:
        from confluent_kafka.admin import AdminClient
        a = AdminClient({"bootstrap.servers": brokers})
        if topics:
            for f in a.delete_topics(topics, operation_timeout=30).values():
                try:
                    f.result()
                except Exception:
                    pass
    except Exception as e:
        log(f"warning: could not delete the run's topics: {e}")
    try:
        import psycopg
        with psycopg.connect(base_dsn, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{dbname}" with (force)')
    except Exception as e:
        log(f"warning: could not drop database {dbname}: {e}")
