"""Network reachability of the cloud endpoints: a TCP connect with a short deadline, in the
background, cached for a few seconds.

Online means some endpoint's host answered: the connection opened, or was refused (the host is
there; a service that is down is the circuit breaker's business, per endpoint). Offline means no
endpoint's host could be reached: name lookup failed, no route, or the connect timed out.
``AIOS_OFFLINE=1`` forces offline without connecting anywhere.

The request path never waits for a connect: ``read`` returns the last result (unknown before
the first check finishes) and starts a check in a daemon thread when that result is stale.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from aios.config.schema import OEMConfig
from aios.types import Tier

OFFLINE_ENV = "AIOS_OFFLINE"


def forced_offline() -> bool:
    """``AIOS_OFFLINE`` set to anything but an explicit no: an unclear value keeps data home."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


def cloud_hosts(cfg: OEMConfig) -> list[tuple[str, int]]:
    """(host, port) of every endpoint a cloud model of the matrix uses, in config order."""
    used = {m.endpoint for m in cfg.models if m.tier is Tier.cloud}
    hosts: list[tuple[str, int]] = []
    for ep in cfg.cloud.endpoints:
        if ep.name not in used:
            continue
        url = urlsplit(ep.base_url)
        try:
            port = url.port or (443 if url.scheme == "https" else 80)
        except ValueError:  # a port the URL pattern let through but is not a number
            continue
        if url.hostname and (url.hostname, port) not in hosts:
            hosts.append((url.hostname, port))
    return hosts


def check_host(host: str, port: int, timeout_s: float) -> tuple[bool, str]:
    """(host reachable, what happened) for one TCP connect bounded by ``timeout_s``."""
    where = f"{host}:{port}"
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True, f"{where} reachable"
    except ConnectionRefusedError:
        return True, f"{where} refused the connection (host up)"
    except TimeoutError:
        return False, f"{where} did not answer within {timeout_s:g} s"
    except socket.gaierror as exc:
        return False, f"{where}: name lookup failed ({exc.strerror or exc})"
    except OSError as exc:  # ENETUNREACH, EHOSTUNREACH, ...
        return False, f"{where} unreachable ({exc.strerror or exc})"


class NetworkProvider:
    """Reports ``online`` and ``network`` (what the last check found) for the given hosts."""

    name = "network"

    def __init__(
        self,
        hosts: Sequence[tuple[str, int]],
        *,
        timeout_s: float = 0.5,
        cache_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.hosts = list(hosts)
        self.timeout_s = timeout_s
        self.cache_s = cache_s
        self._clock = clock
        self._result: tuple[bool, str] | None = None
        self._checked_at = 0.0
        self._lock = threading.Lock()
        self._inflight: threading.Thread | None = None

    def check(self) -> tuple[bool, str]:
        """Connect to each host now (blocking, up to ``timeout_s`` each); cache the result."""
        findings = []
        online = False
        for host, port in self.hosts:
            ok, what = check_host(host, port, self.timeout_s)
            findings.append(what)
            if ok:
                online = True
                findings = [what]
                break
        result = (online, "; ".join(findings) or "no cloud endpoints")
        with self._lock:
            self._result, self._checked_at = result, self._clock()
        return result

    def wait(self, timeout_s: float | None = None) -> None:
        """Wait for a background check in flight (tests, one-shot commands)."""
        thread = self._inflight
        if thread is not None:
            thread.join(timeout_s)

    def read(self) -> dict[str, Any]:
        if forced_offline():
            return {"online": False, "network": f"forced offline by {OFFLINE_ENV}"}
        if not self.hosts:
            return {"online": None, "network": None}
        with self._lock:
            result = self._result
            stale = result is None or self._clock() - self._checked_at >= self.cache_s
            if stale and (self._inflight is None or not self._inflight.is_alive()):
                self._inflight = threading.Thread(
                    target=self.check, name="aios-network-check", daemon=True
                )
                self._inflight.start()
        if result is None:
            return {"online": None, "network": "first reachability check in progress"}
        return {"online": result[0], "network": result[1]}
