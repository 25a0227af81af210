"""Prometheus metrics of one service instance, in their own registry (never the global one)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from aios.record import ExecutionRecord
from aios.service.runtime import Runtime

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class _ModelCollector(Collector):
    """Model memory and queue state, read from the current orchestrator at scrape time."""

    def __init__(self, runtime: Callable[[], Runtime]) -> None:
        self._runtime = runtime

    def collect(self) -> Iterator[GaugeMetricFamily]:
        orch = self._runtime().current.orchestrator
        mem = GaugeMetricFamily(
            "aios_model_memory_mb", "Estimated resident memory of loaded models", labels=["model"]
        )
        active = GaugeMetricFamily(
            "aios_model_active_calls", "Calls running on a loaded model", labels=["model"]
        )
        waiting = GaugeMetricFamily(
            "aios_model_waiting_calls", "Calls queued for a loaded model", labels=["model"]
        )
        for key, res in list(orch.governor.resident.items()):
            mem.add_metric([key[0]], res.footprint_mb)
        for _handle, gate in orch.models.loaded():
            stats = gate.stats()
            active.add_metric([gate.model_id], stats.active)
            waiting.add_metric([gate.model_id], stats.waiting)
        budget = GaugeMetricFamily("aios_model_budget_mb", "Memory the governor may give models")
        budget.add_metric([], orch.governor.budget_mb())
        inflight = GaugeMetricFamily("aios_inflight_requests", "Requests the service is serving")
        inflight.add_metric([], self._runtime().inflight())
        yield from (mem, active, waiting, budget, inflight)


class Metrics:
    def __init__(self, runtime: Callable[[], Runtime]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http = Counter(
            "aios_http_requests",
            "HTTP requests by app, endpoint and status code",
            ["app", "endpoint", "code"],
            registry=r,
        )
        self.requests = Counter(
            "aios_skill_requests",
            "Skill requests by app, skill, status and tier",
            ["app", "skill", "status", "tier"],
            registry=r,
        )
        self.latency = Histogram(
            "aios_skill_latency_seconds",
            "Skill request latency",
            ["skill", "tier"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "aios_tokens",
            "Tokens by skill and direction (in, out)",
            ["skill", "direction"],
            registry=r,
        )
        self.cost = Counter(
            "aios_cloud_cost_cny", "Accounted cloud cost in CNY by app", ["app"], registry=r
        )
        r.register(_ModelCollector(runtime))

    def observe(self, record: ExecutionRecord | None, app: str, skill: str, status: str) -> None:
        tier = record.tier.value if record is not None and record.tier else "none"
        self.requests.labels(app, skill, status, tier).inc()
        if record is None:
            return
        self.latency.labels(skill, tier).observe(record.latency_ms / 1000)
        self.tokens.labels(skill, "in").inc(record.tokens_in)
        self.tokens.labels(skill, "out").inc(record.tokens_out)
        if record.cost_cny:
            self.cost.labels(app).inc(record.cost_cny)

    def render(self) -> bytes:
        return generate_latest(self.registry)
