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


class Ledger:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

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
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise AIOSError(f"cannot read log {path}: {exc.strerror or exc}") from None
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
