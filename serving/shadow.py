"""Shadow scoring in a process of its own, at low CPU priority, off the champion's path.

In shadow mode every answered request is copied to the challenger. Scored on a thread of the
service, those copies cost the champion 8-16% of its requests/s on two cores: the challenger's
engine calls and log rows compete for the GIL and for the cores the requests need, and a
low-priority thread makes it worse (it is descheduled while holding the GIL). So the copies go
to a worker process (`serving.shadow_worker`) started with the service's settings and `nice`d:
it loads the challenger by version itself, scores the copies in batches, writes its `shadow` rows
to the same prediction log, and sends back what `/metrics` counts (per-arm outcomes and scoring
times, rows scored, the log's own counters).

The request path only appends to a bounded deque (`submit` never blocks or raises). A sender
thread hands batches to the worker as length-prefixed JSON over its stdin (no pickle); copies
waiting or in flight are bounded by `capacity`, beyond which a copy is dropped and counted
(`mlops_serve_shadow_dropped_total`), as are copies in flight when the worker dies. A dead worker
is started again for the next copies. `drain` waits until every copy sent is scored and the
worker's log has written its rows; `close` then stops the worker, which writes or spools what it
holds first.
"""

from __future__ import annotations

import logging
import os
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import IO, Any

import orjson

from serving.metrics import ServiceMetrics
from serving.schema import Columns
from serving.settings import ServeSettings
from serving.traffic import ArmMeters, Traffic

logger = logging.getLogger(__name__)

SHADOW_BATCH_JOBS = 256  # copies handed to the worker in one message, at most
# The sender rests this long after each hand-off (sleeping, so without the GIL): copies gather
# into fewer, larger messages and engine calls.
SHADOW_BATCH_SECONDS = 0.01
SHADOW_IDLE_SECONDS = 0.2  # the longest a queued copy waits for an idle sender to notice it
RESTART_SECONDS = 1.0  # a worker that died is started again at most this often
WORKER_NICE = 10  # the worker's CPU priority below the service's (Linux `nice` increment)
# The worker's prediction-log counters, added to the service's own /metrics as they grow.
LOG_COUNTERS = ("log_failures", "log_written", "log_dead_lettered", "log_spooled", "log_lost")

_LENGTH = struct.Struct(">I")


def write_message(stream: IO[bytes], message: dict[str, Any]) -> None:
    """One length-prefixed JSON message (numpy values as their JSON form)."""
    payload = orjson.dumps(message, option=orjson.OPT_SERIALIZE_NUMPY)
    stream.write(_LENGTH.pack(len(payload)) + payload)
    stream.flush()


def read_message(stream: IO[bytes]) -> dict[str, Any] | None:
    """The next message, or None at the end of the stream."""
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None
    (size,) = _LENGTH.unpack(head)
    payload = stream.read(size)
    if len(payload) < size:
        return None
    message: dict[str, Any] = orjson.loads(payload)
    return message


def counter_values(metrics: ServiceMetrics) -> dict[str, dict[str, float]]:
    """The log counters of a worker's metrics, by counter and label value (its one label)."""
    values: dict[str, dict[str, float]] = {}
    for name in LOG_COUNTERS:
        for family in getattr(metrics, name).collect():
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    label = next(iter(sample.labels.values()), "")
                    values.setdefault(name, {})[label] = sample.value
    return values


@dataclass(frozen=True)
class ShadowJob:
    """A copy of one answered request for the challenger."""

    traffic: Traffic
    columns: Columns
    request_id: str
    timestamp: float
    rows: int = field(default=1)


@dataclass
class _Worker:
    process: subprocess.Popen[bytes]
    reader: threading.Thread
    in_flight: int = 0
    counters: dict[str, dict[str, float]] = field(default_factory=dict)
    asked: set[str] = field(default_factory=set)  # versions it was told to load
    loaded: dict[str, str | None] = field(default_factory=dict)  # version -> load error or None


class ShadowScorer:
    """Hands shadow copies to the worker process and counts what it reports."""

    def __init__(self, settings: ServeSettings, metrics: ServiceMetrics, capacity: int) -> None:
        self._settings = settings
        self._metrics = metrics
        self._capacity = capacity
        self._jobs: deque[ShadowJob] = deque()
        self._wake = threading.Event()
        self._idle = True
        self._closing = False
        self._thread: threading.Thread | None = None
        self._worker: _Worker | None = None
        self._lock = threading.Condition()
        self._meters: dict[str, tuple[ArmMeters, Any]] = {}  # version -> meters, rows counter
        self._flushed: set[int] = set()
        self._tokens = 0
        self._last_start = -RESTART_SECONDS
        self._wanted: str | None = None  # the challenger version shadow mode serves

    @property
    def worker_pid(self) -> int | None:
        """The worker process's id while one runs (tests, diagnostics)."""
        worker = self._worker
        return None if worker is None or worker.process.poll() is not None else worker.process.pid

    def status(self) -> dict[str, Any]:
        """The worker as /health and /metadata show it while a shadow rollout is served."""
        worker, version = self._worker, self._wanted
        alive = worker is not None and worker.process.poll() is None
        loaded = worker.loaded if alive and worker is not None else {}
        return {
            "pid": worker.process.pid if alive and worker is not None else None,
            "version": version,
            "ready": version in loaded and loaded[version] is None,
            "error": loaded.get(version) if version else None,
            "in_flight": worker.in_flight if alive and worker is not None else 0,
        }

    def prepare(self, version: str | None) -> None:
        """Have the worker running with `version` loaded before the first copy (None: the
        rollout left shadow mode; the worker stays for the next one)."""
        self._wanted = version
        if version is not None:
            self._wake.set()

    def start(self) -> None:
        """Start the sender thread; the worker process starts with shadow mode's challenger."""
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="shadow-sender", daemon=True)
        self._thread.start()

    def submit(self, job: ShadowJob) -> None:
        """Queue a copy; beyond `capacity` copies waiting or in flight it is dropped, counted."""
        worker = self._worker
        in_flight = worker.in_flight if worker is not None else 0
        if self._thread is None or len(self._jobs) + in_flight >= self._capacity:
            self._metrics.shadow_dropped.inc()
            return
        self._jobs.append(job)
        if self._idle:
            self._idle = False
            self._wake.set()

    def drain(self, timeout: float = 10.0) -> None:
        """Wait until every queued copy is scored and the worker's log has written its rows."""
        deadline = time.monotonic() + timeout
        while (self._jobs or not self._idle) and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.005)
        with self._lock:
            worker = self._worker
            if worker is None or worker.process.poll() is not None:
                return
            self._tokens += 1
            token = self._tokens
            try:
                assert worker.process.stdin is not None
                write_message(worker.process.stdin, {"op": "flush", "token": token})
            except OSError:
                return
            while token not in self._flushed and self._worker is worker:
                left = deadline - time.monotonic()
                if left <= 0:
                    logger.warning("shadow worker did not confirm its log flush in %.0f s", timeout)
                    return
                self._lock.wait(left)
            self._flushed.discard(token)

    def close(self, timeout: float = 10.0) -> None:
        """Score what is queued, then stop the sender and the worker (which writes its log)."""
        if self._thread is None:
            return
        self.drain(timeout)
        self._closing = True
        self._wake.set()
        self._thread.join(timeout)
        self._thread = None
        worker, self._worker = self._worker, None
        if worker is None:
            return
        try:
            assert worker.process.stdin is not None
            worker.process.stdin.close()  # end of input: the worker closes its log and exits
            worker.process.wait(timeout)
        except (OSError, subprocess.TimeoutExpired):
            logger.error("shadow worker did not stop in %.0f s; killed", timeout)
            worker.process.kill()
        worker.reader.join(timeout)

    # --- the sender thread ---------------------------------------------------------------

    def _run(self) -> None:
        jobs = self._jobs
        while not self._closing:
            self._load_wanted()
            if not jobs:
                self._idle = True
                self._wake.wait(SHADOW_IDLE_SECONDS)
                self._wake.clear()
                continue
            started = time.monotonic()
            worker = self._worker
            room = self._capacity - (worker.in_flight if worker is not None else 0)
            batch = [jobs.popleft() for _ in range(min(len(jobs), SHADOW_BATCH_JOBS, room))]
            if batch:
                try:
                    self._send(batch)
                except Exception:  # the shadow never takes the service down; counted as dropped
                    logger.exception("handing shadow copies to the worker failed")
                    self._metrics.shadow_dropped.inc(len(batch))
            rest = SHADOW_BATCH_SECONDS - (time.monotonic() - started)
            if rest > 0 and not self._closing:
                time.sleep(rest)

    def _load_wanted(self) -> None:
        version = self._wanted
        worker = self._worker
        if version is None or (worker is not None and version in worker.asked):
            return
        worker = self._running_worker()
        if worker is None:
            return
        worker.asked.add(version)
        try:
            assert worker.process.stdin is not None
            write_message(worker.process.stdin, {"op": "load", "version": version})
        except OSError:
            logger.error("the shadow worker is gone before loading v%s", version)

    def _send(self, batch: list[ShadowJob]) -> None:
        groups: dict[str, list[ShadowJob]] = {}
        for job in batch:  # one message per challenger: a swap mid-batch changes it
            challenger = job.traffic.challenger
            if challenger is None or job.traffic.challenger_meters is None:
                continue
            groups.setdefault(challenger.version, []).append(job)
            self._meters[challenger.version] = (
                job.traffic.challenger_meters,
                challenger.rows_scored,
            )
        for version, group in groups.items():
            worker = self._running_worker()
            if worker is None:
                self._metrics.shadow_dropped.inc(len(group))
                continue
            message = {
                "op": "score",
                "version": version,
                "jobs": [[j.request_id, j.timestamp, j.rows, j.columns] for j in group],
            }
            with self._lock:
                worker.in_flight += len(group)
            try:
                assert worker.process.stdin is not None
                write_message(worker.process.stdin, message)
            except OSError:  # the worker died: its reader counts what was in flight
                logger.error("the shadow worker is gone; %d copies dropped", len(group))

    def _running_worker(self) -> _Worker | None:
        worker = self._worker
        if worker is not None and worker.process.poll() is None:
            return worker
        if time.monotonic() - self._last_start < RESTART_SECONDS:
            return None
        self._last_start = time.monotonic()
        try:
            self._worker = self._start_worker()
        except OSError:
            logger.exception("the shadow worker could not be started")
            self._worker = None
        return self._worker

    def _start_worker(self) -> _Worker:
        process = subprocess.Popen(
            [sys.executable, "-m", "serving.shadow_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=worker_environment(self._settings),
        )
        worker = _Worker(process, threading.Thread())
        worker.reader = threading.Thread(
            target=self._read, args=(worker,), name="shadow-reader", daemon=True
        )
        worker.reader.start()
        logger.info("shadow worker started (pid %d)", process.pid)
        return worker

    # --- the reader thread ---------------------------------------------------------------

    def _read(self, worker: _Worker) -> None:
        stream = worker.process.stdout
        assert stream is not None
        while (message := read_message(stream)) is not None:
            self._apply(worker, message)
        code = worker.process.wait()
        with self._lock:
            lost, worker.in_flight = worker.in_flight, 0
            if self._worker is worker:
                self._worker = None
            self._lock.notify_all()
        if lost:
            self._metrics.shadow_dropped.inc(lost)
        if lost or not (self._closing or code == 0):
            logger.error("the shadow worker exited (code %s); %d copies dropped", code, lost)

    def _apply(self, worker: _Worker, message: dict[str, Any]) -> None:
        self._add_counters(worker, message.get("counters") or {})
        if message["op"] == "scored":
            bound = self._meters.get(str(message["version"]))
            if bound is not None:
                meters, rows_scored = bound
                for seconds in message["seconds"]:
                    meters.seconds.observe(seconds)
                meters.ok.inc(message["ok"])
                if message["error"]:
                    meters.error.inc(message["error"])
                if rows_scored is not None:
                    rows_scored.inc(message["rows"])
            with self._lock:
                worker.in_flight -= message["ok"] + message["error"]
                self._lock.notify_all()
        elif message["op"] == "loaded":
            worker.loaded[str(message["version"])] = message.get("error")
        elif message["op"] == "flushed":
            with self._lock:
                self._flushed.add(int(message["token"]))
                self._lock.notify_all()

    def _add_counters(self, worker: _Worker, counters: dict[str, dict[str, float]]) -> None:
        """Add the growth of the worker's log counters to the service's own."""
        for name, by_label in counters.items():
            if name not in LOG_COUNTERS:
                continue
            seen = worker.counters.setdefault(name, {})
            for label, value in by_label.items():
                grown = value - seen.get(label, 0.0)
                if grown > 0:
                    getattr(self._metrics, name).labels(label).inc(grown)
                seen[label] = value


def worker_environment(settings: ServeSettings) -> dict[str, str]:
    """The service's environment with its settings spelled out for the worker (they may have
    come from the command line), less the bearer token the worker has no use for."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_SERVE_TOKEN",))}
    spool = settings.log_spool_dir or settings.log_dir.with_name(f"{settings.log_dir.name}_spool")
    env.update(
        MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",  # no download bars in the service's log
        MLFLOW_TRACKING_URI=settings.tracking_uri,
        MLOPS_SERVE_MODEL_NAME=settings.model_name,
        MLOPS_SERVE_ALIAS=settings.alias,
        MLOPS_SERVE_USE_ONNX=str(settings.use_onnx).lower(),
        MLOPS_SERVE_MAX_ROWS=str(settings.max_rows),
        MLOPS_SERVE_LOG_DIR=str(settings.log_dir),
        # its own spool, replayed by the next worker (the service replays the service's)
        MLOPS_SERVE_LOG_SPOOL_DIR=str(spool.with_name(f"{spool.name}_shadow")),
        MLOPS_SERVE_LOG_FLUSH_SECONDS=str(settings.log_flush_seconds),
        MLOPS_SERVE_LOG_QUEUE_SIZE=str(settings.log_queue_size),
    )
    for key in ("MLFLOW_REGISTRY_URI", "MLOPS_SERVE_LOG_URL", "MLOPS_PREDICTION_LOG_URL"):
        env.pop(key, None)
    if settings.registry_uri:
        env["MLFLOW_REGISTRY_URI"] = settings.registry_uri
    if settings.log_url:
        env["MLOPS_SERVE_LOG_URL"] = settings.log_url
    return env
