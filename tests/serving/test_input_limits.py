"""Request validation is linear and bounded: too many columns or rows are refused unparsed."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson
import pytest
import uvicorn
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.protocols.invocations import CSV_TYPE
from tests.serving.conftest import Store, make_settings, row, split_of

COLUMNS = ["temp", "hum", "hr", "season", "weather"]


@pytest.fixture
def server(store: Store, tmp_path: Path) -> Iterator[str]:
    """The real app under uvicorn on a free loopback port, in a thread of this process."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(make_settings(store, tmp_path)), host="127.0.0.1", port=port, log_level="error"
    )
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while not running.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert running.started, "uvicorn did not start within 60 s"
    try:
        yield url
    finally:
        running.should_exit = True
        thread.join(30)


def _csv(header: list[str], rows: list[list[object]]) -> bytes:
    lines = [",".join(header), *(",".join(map(str, r)) for r in rows)]
    return ("\n".join(lines) + "\n").encode()


def test_a_20000_name_header_is_refused_at_once_while_liveness_answers(server: str) -> None:
    header = COLUMNS + [f"extra_column_{i}" for i in range(20_000)]
    body = _csv(header, [[21.5, 0.4, 8, 2, "mist", *([0] * 20_000)]])

    def post() -> tuple[httpx.Response, float]:
        started = time.perf_counter()
        response = httpx.post(
            f"{server}/invocations", content=body, headers={"content-type": CSV_TYPE}, timeout=10
        )
        return response, time.perf_counter() - started

    def live() -> float:
        started = time.perf_counter()
        assert httpx.get(f"{server}/v2/health/live", timeout=5).status_code == 200
        return time.perf_counter() - started

    with ThreadPoolExecutor(4) as pool:
        posted = pool.submit(post)
        waits = [pool.submit(live) for _ in range(5)]
        response, seconds = posted.result(timeout=15)
        slowest = max(w.result(timeout=15) for w in waits)
    assert response.status_code == 400
    assert response.json()["field"] == "csv.header"
    assert "20005 columns exceed the limit of 21" in response.json()["message"]
    assert seconds < 1.0 and slowest < 1.0


def test_names_are_checked_in_linear_time() -> None:
    """A header at the limit with every name duplicated still answers in milliseconds."""
    from serving.schema import ColumnSpec, InputSchema

    schema = InputSchema([ColumnSpec(name=f"c{i}", type="double") for i in range(5_000)])
    names = [f"c{i}" for i in range(5_000)] + ["c0"] * 16
    started = time.perf_counter()
    with pytest.raises(Exception, match=r"duplicated columns \['c0'\]"):
        schema.check_names(names, "csv.header")
    assert time.perf_counter() - started < 0.5


# The last row is invalid: had the rows been validated first, the error would name it.
ROWS = [row() for _ in range(100_000)] + [row(temp="not a number")]


def test_a_100001_row_predict_is_refused_before_validation(client: TestClient) -> None:
    response = client.post("/predict", content=orjson.dumps({"records": ROWS}))
    assert response.status_code == 400
    assert response.json()["message"] == ("body.records: 100001 rows exceed the limit of 100000")


def test_a_100001_row_csv_is_refused_before_parsing(client: TestClient) -> None:
    body = _csv(COLUMNS, [[r[c] for c in COLUMNS] for r in ROWS])
    response = client.post("/invocations", content=body, headers={"content-type": CSV_TYPE})
    assert response.status_code == 400
    assert "100001 data lines exceed the limit of 100000 rows" in response.json()["message"]


@pytest.mark.parametrize("layout", ["dataframe_split", "dataframe_records"])
def test_a_100001_row_invocation_is_refused_before_validation(
    client: TestClient, layout: str
) -> None:
    data = split_of(ROWS) if layout == "dataframe_split" else ROWS
    response = client.post("/invocations", content=orjson.dumps({layout: data}))
    assert response.status_code == 400
    assert "100001 rows exceed the limit of 100000" in response.json()["message"]


def test_duplicated_tensors_are_named_on_v2_infer(client: TestClient) -> None:
    kinds = {"temp": "FP64", "hum": "FP64", "hr": "INT64", "season": "INT64", "weather": "BYTES"}
    tensors = [
        {"name": c, "shape": [1], "datatype": kinds[c], "data": [v]} for c, v in row().items()
    ]
    response = client.post("/v2/models/demand/infer", json={"inputs": [*tensors, tensors[0]]})
    assert response.status_code == 400
    assert response.json()["message"] == "inputs: duplicated columns ['temp']"
