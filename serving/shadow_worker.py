"""The shadow worker process: scores a service's shadow copies and logs them (serving.shadow).

Started by the service with its settings in the environment (`python -m serving.shadow_worker`),
at a lower CPU priority. It reads length-prefixed JSON messages on stdin (`score` a batch of
copies of one challenger version, `flush` the log) and answers on the stdout it was started
with; everything it prints goes to stderr, the service's log. It loads each challenger version
itself (skops or ONNX, never pickle), validates each copy against that version's signature,
scores a batch in one engine call (a batch whose call fails copy by copy, so one bad copy counts
one error) and writes the `shadow` rows to the service's prediction log. A copy's scoring time
(`mlops_serve_arm_seconds{arm="shadow"}`) is the CPU time of the call that scored it. SIGINT and
SIGTERM are left to the service, which closes the worker's input when it stops: the worker then
writes (or spools) what its log holds and exits.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import time
from itertools import chain
from typing import IO, Any, NamedTuple

from prefect_mlops.prediction_log import PredictionRecord, open_store
from prefect_mlops.runtime import refuse_pickle_loading
from prefect_mlops.settings import Settings
from prefect_mlops.tracking import bound_http_calls
from serving.engines import EngineOutput
from serving.errors import InputError
from serving.log_writer import PredictionLog
from serving.metrics import ServiceMetrics
from serving.model import LoadedModel, load_version, serving_client
from serving.schema import Columns
from serving.settings import ServeSettings
from serving.shadow import WORKER_NICE, counter_values, read_message, write_message

logger = logging.getLogger("serving.shadow_worker")

RETRY_LOAD_SECONDS = 30.0  # a version that failed to load is tried again after this long
KEPT_VERSIONS = 2  # challenger versions kept loaded (a rollout restarted on a newer one)


class ShadowWorker:
    """Loads challengers by version, scores batches of copies, logs them."""

    def __init__(self, settings: ServeSettings, out: IO[bytes]) -> None:
        self._settings = settings
        self._out = out
        self._client = serving_client(settings)
        self._metrics = ServiceMetrics()
        self._log = PredictionLog(
            open_store(settings.log_url, settings.log_dir, settings.log_spool_dir),
            self._metrics,
            flush_seconds=settings.log_flush_seconds,
            queue_size=settings.log_queue_size,
            compact_seconds=float("inf"),  # the service compacts the log
        )
        self._models: dict[str, LoadedModel] = {}
        self._failed: dict[str, float] = {}
        self._errors: dict[str, str] = {}

    def run(self, stream: IO[bytes]) -> None:
        self._log.start()
        try:
            while (message := read_message(stream)) is not None:
                if message["op"] == "score":
                    self._score(str(message["version"]), message["jobs"])
                elif message["op"] == "load":
                    self._load(str(message["version"]))
                elif message["op"] == "flush":
                    self._log.flush()
                    self._reply({"op": "flushed", "token": message["token"]})
        finally:
            self._log.close()
            self._reply({"op": "closed"})

    def _reply(self, message: dict[str, Any]) -> None:
        message["counters"] = counter_values(self._metrics)
        with contextlib.suppress(OSError):  # the service is gone; the log is written all the same
            write_message(self._out, message)

    def _load(self, version: str) -> None:
        model = self._model(version)
        error = None if model is not None else self._errors.get(version, "not loaded")
        self._reply({"op": "loaded", "version": version, "error": error})

    def _model(self, version: str) -> LoadedModel | None:
        model = self._models.get(version)
        if model is not None:
            return model
        if time.monotonic() - self._failed.get(version, -RETRY_LOAD_SECONDS) < RETRY_LOAD_SECONDS:
            return None
        try:
            model = load_version(self._client, self._settings, version)
        except Exception as exc:
            logger.exception("cannot load %s v%s", self._settings.model_name, version)
            self._failed[version] = time.monotonic()
            self._errors[version] = f"cannot load v{version}: {type(exc).__name__}: {exc}"[:500]
            return None
        self._models[version] = model
        while len(self._models) > KEPT_VERSIONS:
            self._models.pop(next(iter(self._models)))
        return model

    def _score(self, version: str, jobs: list[list[Any]]) -> None:
        model = self._model(version)
        if model is None:
            self._reply(_outcome(version, 0, len(jobs), [], 0))
            return
        valid: list[Copy] = []
        errors = 0
        for request_id, timestamp, _rows, columns in jobs:
            try:
                valid.append(Copy(request_id, timestamp, model.schema.validate_columns(columns)))
            except InputError:  # the challenger's signature refuses what the champion took
                errors += 1
        seconds: list[float] = []
        rows = 0
        groups = [valid] if len(valid) > 1 else []  # the batch in one call first
        scored = self._predict(model, groups[0]) if groups else None
        if scored is None:  # or copy by copy, so one bad copy counts one error
            groups = [[copy] for copy in valid]
        for group in groups:
            if scored is None:
                scored = self._predict(model, group)
                if scored is None:
                    errors += 1
                    continue
            output, elapsed = scored
            scored = None
            offset = 0
            for copy in group:
                end = offset + len(next(iter(copy.columns.values()), []))
                probabilities = output.probabilities
                self._log.record(
                    PredictionRecord(
                        copy.request_id,
                        copy.timestamp,
                        model.name,
                        model.version,
                        copy.columns,
                        output.predictions[offset:end],
                        None if probabilities is None else probabilities[offset:end],
                        source="shadow",
                        arm="shadow",
                    )
                )
                offset = end
                seconds.append(elapsed)  # each copy waited for the whole call
            rows += offset
        self._reply(_outcome(version, len(seconds), errors, seconds, rows))

    def _predict(self, model: LoadedModel, group: list[Copy]) -> tuple[EngineOutput, float] | None:
        first = group[0].columns
        columns = (
            first
            if len(group) == 1
            else {n: list(chain.from_iterable(c.columns[n] for c in group)) for n in first}
        )
        # CPU time, not wall time: the worker runs at a low priority, so its wall time would
        # measure the scheduler's choices (and the load beside it), not the challenger.
        started = time.process_time()
        try:
            output = model.engine.predict(columns)
        except Exception:
            logger.debug("shadow copy %s failed", group[0].request_id, exc_info=True)
            return None
        return output, time.process_time() - started


class Copy(NamedTuple):
    """One copy, validated against the challenger's signature."""

    request_id: str
    timestamp: float
    columns: Columns


def _outcome(version: str, ok: int, error: int, seconds: list[float], rows: int) -> dict[str, Any]:
    return {
        "op": "scored",
        "version": version,
        "ok": ok,
        "error": error,
        "seconds": seconds,
        "rows": rows,
    }


def main() -> None:
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints go to the service's log
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if hasattr(os, "nice"):
        os.nice(WORKER_NICE)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s shadow-worker %(message)s")
    refuse_pickle_loading()
    bound_http_calls(Settings())
    ShadowWorker(ServeSettings(), out).run(sys.stdin.buffer)


if __name__ == "__main__":
    main()
