"""The request ledger: one SQLite row per request, for the daily cloud budget and cost reports.

SQLite in WAL mode with ``synchronous=NORMAL``: a crash loses at most the last transaction,
never the file, and an insert costs tens of microseconds.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from aios.files import read_text_file
from aios.record import ExecutionRecord

SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    request_id TEXT PRIMARY KEY,
    ts REAL NOT NULL,
    day TEXT NOT NULL,
    skill TEXT NOT NULL,
    status TEXT NOT NULL,
    tier TEXT,
    model TEXT,
    fallback TEXT,
    tokens_in INTEGER NOT NULL,
    tokens_out INTEGER NOT NULL,
    cost_cny REAL NOT NULL,
    cloud_equivalent_cny REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_day ON requests(day);
"""


def default_path() -> Path:
    env = os.environ.get("AIOS_LEDGER")
    if env:
        return Path(env).expanduser()
    from aios.sources import aios_home

    return aios_home() / "ledger.sqlite"


@dataclass(frozen=True)
class CostReport:
    requests: int
    on_device: int
    in_cloud: int
    spent_cny: float
    all_cloud_cny: float

    @property
    def device_share(self) -> float:
        """Share of model-served requests that stayed on the device."""
        served = self.on_device + self.in_cloud
        return self.on_device / served if served else 0.0

    @property
    def saved_cny(self) -> float:
        return self.all_cloud_cny - self.spent_cny


def _ledger_problem(path: Path, *, create: bool) -> str | None:
    """Why ``path`` cannot be (or become) a ledger, from ``stat`` alone.

    Never by opening the file: closing any descriptor of a database file drops the POSIX locks
    that this process's other SQLite connections hold on it (SQLite's documented pitfall),
    which surfaced as "disk I/O error" in a second orchestrator of the same process.
    """
    if not path.exists():
        return None if create else "no request ledger there (run some requests first)"
    if not path.is_file():
        return "not a request ledger (not a regular file)"
    if not create and path.stat().st_size == 0:
        return "not a request ledger (an empty file)"
    return None


class Ledger:
    """``create=False`` opens an existing ledger for reports and never writes a schema into it."""

    def __init__(self, path: Path, *, create: bool = True) -> None:
        from aios.errors import AIOSError

        self.path = path
        problem = _ledger_problem(path, create=create)
        if problem:
            raise AIOSError(f"{path}: {problem}")
        self._lock = threading.Lock()
        try:
            if create:
                path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        except (sqlite3.Error, OSError) as exc:
            raise AIOSError(f"{path}: cannot open the request ledger ({exc})") from None
        try:
            if create:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.executescript(SCHEMA)
                return
            found = self._db.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='requests'"
            ).fetchone()
            problem = None if found else "not a request ledger (no requests table)"
        except sqlite3.DatabaseError as exc:
            not_db = "not a database" in str(exc)
            problem = "not a request ledger (not an SQLite database)" if not_db else str(exc)
        if problem:
            self._db.close()
            raise AIOSError(f"{path}: {problem}")

    @staticmethod
    def _day(ts: float) -> str:
        return time.strftime("%Y-%m-%d", time.localtime(ts))

    def add(self, rec: ExecutionRecord, cloud_equivalent_cny: float) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO requests VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    rec.request_id,
                    rec.started_at,
                    self._day(rec.started_at),
                    rec.skill,
                    rec.status,
                    rec.tier.value if rec.tier else None,
                    rec.model,
                    rec.fallback,
                    rec.tokens_in,
                    rec.tokens_out,
                    rec.cost_cny,
                    cloud_equivalent_cny,
                ),
            )

    def spent_today(self, now: float | None = None) -> float:
        day = self._day(now if now is not None else time.time())
        with self._lock:
            row = self._db.execute(
                "SELECT COALESCE(SUM(cost_cny), 0) FROM requests WHERE day = ?", (day,)
            ).fetchone()
        return float(row[0])

    def report(self, since: float | None = None) -> CostReport:
        where, args = ("WHERE status = 'ok'", ())
        if since is not None:
            where, args = ("WHERE status = 'ok' AND ts >= ?", (since,))  # type: ignore[assignment]
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*), SUM(tier = 'device'), SUM(tier = 'cloud'), "
                f"COALESCE(SUM(cost_cny), 0), COALESCE(SUM(cloud_equivalent_cny), 0) "
                f"FROM requests {where}",
                args,
            ).fetchone()
        return CostReport(int(row[0]), int(row[1] or 0), int(row[2] or 0), row[3], row[4])

    def close(self) -> None:
        with self._lock:
            self._db.close()


def report_from_log(path: Path, since: float | None = None) -> CostReport:
    """The same report from a JSON-lines log of ``aios.request`` events."""
    import json

    from aios.errors import AIOSError

    n = dev = cloud = 0
    spent = all_cloud = 0.0
    try:
        lines = read_text_file(path).splitlines()
    except ValueError as exc:
        raise AIOSError(f"{path}: {exc}") from None
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue  # other output interleaved with the log
        if not isinstance(event, dict) or event.get("event") != "aios.request":
            continue
        if event.get("status") != "ok" or (since and event.get("started_at", 0) < since):
            continue
        n += 1
        dev += event.get("tier") == "device"
        cloud += event.get("tier") == "cloud"
        spent += float(event.get("cost_cny") or 0.0)
        all_cloud += float(event.get("cloud_equivalent_cny") or 0.0)
    return CostReport(n, dev, cloud, spent, all_cloud)
