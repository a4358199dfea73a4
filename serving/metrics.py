"""Prometheus metrics of one service instance, in a registry of its own (no global state)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ServiceMetrics:
    """Requests, errors, latency, rows scored, the loaded version and prediction-log health."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "mlops_serve_requests",
            "HTTP requests by route and status code",
            ["route", "status"],
            registry=self.registry,
        )
        self.errors = Counter(
            "mlops_serve_errors",
            "requests answered with a 4xx or 5xx status",
            ["route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "mlops_serve_request_seconds",
            "request latency in seconds",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.rows = Counter(
            "mlops_serve_rows_scored", "rows predicted", ["version"], registry=self.registry
        )
        self.model = Gauge(
            "mlops_serve_model_loaded",
            "1 for the model version being served",
            ["name", "version", "engine"],
            registry=self.registry,
        )
        self.registry_reachable = Gauge(
            "mlops_serve_registry_reachable",
            "1 while the model registry answered the last alias look-up, 0 when it did not",
            registry=self.registry,
        )
        self.reloads = Counter(
            "mlops_serve_model_reloads",
            "model loads by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.log_failures = Counter(
            "mlops_serve_prediction_log_failures",
            "prediction-log attempts that failed with the store down (rows kept for retry)",
            ["kind"],
            registry=self.registry,
        )
        self.log_written = Counter(
            "mlops_serve_prediction_log_rows",
            "rows written to the prediction log",
            ["table"],
            registry=self.registry,
        )
        self.log_dead_lettered = Counter(
            "mlops_serve_prediction_log_dead_lettered_rows",
            "rows the log store refused, kept in its dead-letter store with the reason",
            ["table"],
            registry=self.registry,
        )
        self.log_spooled = Counter(
            "mlops_serve_prediction_log_spooled_rows",
            "rows spilled to the local spool while the store was down (replayed later)",
            ["table"],
            registry=self.registry,
        )
        self.log_lost = Counter(
            "mlops_serve_prediction_log_lost_rows",
            "rows lost: the queue was full, or both the store and the spool refused them",
            ["table"],
            registry=self.registry,
        )
        # Per arm of a rollout (serving.traffic); the rollout flow reads these by name.
        self.arm_requests = Counter(
            "mlops_serve_arm_requests",
            "requests scored per rollout arm (champion, challenger, shadow), version and outcome",
            ["arm", "version", "outcome"],
            registry=self.registry,
        )
        self.arm_seconds = Histogram(
            "mlops_serve_arm_seconds",
            "model scoring time of one request per rollout arm and version, in seconds",
            ["arm", "version"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.shadow_dropped = Counter(
            "mlops_serve_shadow_dropped",
            "shadow copies dropped because the shadow queue was full (the client was answered)",
            registry=self.registry,
        )
        self.rollout_share = Gauge(
            "mlops_serve_rollout_share",
            "the challenger's traffic share while a rollout is served (0 in shadow mode)",
            ["mode", "champion", "challenger"],
            registry=self.registry,
        )
        for table in ("predictions", "feedback"):  # exported at 0, so "none lost" is visible
            for counter in (self.log_written, self.log_dead_lettered, self.log_lost):
                counter.labels(table)

    def observe(self, route: str, status: int, seconds: float) -> None:
        """Record one finished request."""
        code = str(status)
        self.requests.labels(route, code).inc()
        if status >= 400:
            self.errors.labels(route, code).inc()
        self.latency.labels(route).observe(seconds)

    def model_loaded(self, name: str, version: str, engine: str) -> None:
        """Point the loaded-version gauge at a new version."""
        self.model.clear()
        self.model.labels(name, version, engine).set(1)

    def rollout_served(
        self, mode: str | None, champion: str, challenger: str | None, share: float
    ) -> None:
        """Point the rollout gauge at the split being served (cleared when none is)."""
        self.rollout_share.clear()
        if mode is not None and challenger is not None:
            self.rollout_share.labels(mode, champion, challenger).set(share)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts and times every HTTP request by route template (pure ASGI: no extra task)."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            # Both the router and the fast lane put the matched route in the scope.
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.observe(route, status, time.perf_counter() - started)
