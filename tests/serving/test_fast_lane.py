"""The fast lane answers exactly as the routed FastAPI path, for every route it serves."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import Depends, HTTPException, Request
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from mlflow.tracking import MlflowClient
from starlette.routing import Match

from serving import fast_lane
from serving.app import create_app
from serving.auth import require_token
from serving.fast_lane import LANE_ENDPOINTS, FastLane, lane_table
from serving.routes import infer, invocations, predict
from tests.serving.conftest import (
    CLASSIFIER,
    REGRESSOR,
    STRICT,
    Store,
    make_settings,
    row,
    split_of,
)

TOKEN = "lane-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}
MAX_BODY = 2048
INFER = "/v2/models/{model}/infer"


@dataclass(frozen=True)
class Pair:
    """The same settings served with the fast lane and without it."""

    model: str
    lane: TestClient
    routed: TestClient


@dataclass(frozen=True)
class Case:
    """One request, sent to both apps."""

    method: str
    path: str
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] | None = None


def _tensors(record: dict[str, object], **datatypes: str) -> list[dict[str, object]]:
    kinds = {"temp": "FP64", "hum": "FP64", "hr": "INT64", "season": "INT64", "weather": "BYTES"}
    kinds.update(datatypes)
    return [{"name": k, "shape": [1], "datatype": kinds[k], "data": [v]} for k, v in record.items()]


def post(
    path: str, json: Any = None, content: bytes | None = None, headers: dict[str, str] | None = None
) -> Case:
    """A POST with the right token, unless `headers` names another `authorization`."""
    return Case("POST", path, json, content, {**AUTH, **(headers or {})})


def anonymous(path: str, json: Any = None, content: bytes | None = None) -> Case:
    """A POST without any token."""
    return Case("POST", path, json, content, {})


ROWS = [row(), row(temp=5.0, hr=23, weather="rain"), row(hum=None, season=4)]
ONE = {"records": [row()]}
NULL_ROWS = [row(temp=None, season=None), row(hr=None, weather=None), {k: None for k in row()}]
TENSORS = {"inputs": _tensors(row())}
CSV_BODY = b"temp,hum,hr,season,weather\n21.5,,8,2,clear\n3.0,0.4,1,1,rain\n"
CASES = {
    # /predict
    "predict one row": post("/predict", ONE),
    "predict rows, client id": post(
        "/predict", {"records": ROWS}, headers={"x-request-id": "abc-1"}
    ),
    "predict invalid client id": post("/predict", ONE, headers={"x-request-id": "x" * 80}),
    "predict unknown category": post("/predict", {"records": [row(weather="snow")]}),
    "predict malformed json": post("/predict", content=b"{not json"),
    "predict wrong type": post("/predict", {"records": [row(hr="eight")]}),
    "predict missing column": post("/predict", {"records": [{"temp": 1.0}]}),
    "predict extra column": post("/predict", {"records": [row(colour="red")]}),
    "predict required null": post("/predict", {"records": [row(temp=None)]}),
    "predict nulls everywhere": post("/predict", {"records": NULL_ROWS}),
    "invocations nulls everywhere": post("/invocations", {"dataframe_split": split_of(NULL_ROWS)}),
    "infer nulls everywhere": post(INFER, {"inputs": _tensors({k: None for k in row()})}),
    "predict non-finite": post("/predict", content=b'{"records": [{"temp": NaN}]}'),
    "predict empty batch": post("/predict", {"records": []}),
    "predict not an object": post("/predict", [1, 2]),
    "predict too large": post("/predict", {"records": [row()] * 40}),
    "predict csv content type": post("/predict", ONE, headers={"content-type": "text/csv"}),
    "predict missing token": anonymous("/predict", ONE),
    "predict wrong token": post("/predict", ONE, headers={"authorization": "Bearer nope"}),
    "predict basic scheme": post("/predict", ONE, headers={"authorization": f"Basic {TOKEN}"}),
    "predict bad body without token": anonymous("/predict", content=b"{not json"),
    "predict GET": Case("GET", "/predict", headers=AUTH),
    "predict trailing slash": post("/predict/", ONE),
    # /invocations
    "invocations split": post("/invocations", {"dataframe_split": split_of(ROWS)}),
    "invocations records": post("/invocations", {"dataframe_records": ROWS}),
    "invocations instances": post("/invocations", {"instances": ROWS}),
    "invocations inputs": post("/invocations", {"inputs": {k: [v] for k, v in row().items()}}),
    "invocations csv": post("/invocations", content=CSV_BODY, headers={"content-type": "text/csv"}),
    "invocations bad csv": post(
        "/invocations", content=b"temp,hum\n1.0,2.0\n", headers={"content-type": "text/csv"}
    ),
    "invocations no content type": post("/invocations", content=b'{"instances": []}'),
    "invocations xml": post(
        "/invocations", content=b"<a/>", headers={"content-type": "application/xml"}
    ),
    "invocations malformed json": post("/invocations", content=b'{"dataframe_split": {'),
    "invocations two formats": post(
        "/invocations", {"dataframe_records": [row()], "instances": [row()]}
    ),
    "invocations bad value": post(
        "/invocations", {"dataframe_split": split_of([row(), row(temp="x")])}
    ),
    "invocations too large": post("/invocations", {"dataframe_records": [row()] * 40}),
    "invocations missing token": anonymous("/invocations", {"instances": [row()]}),
    "invocations wrong token": post("/invocations", ONE, headers={"authorization": "Bearer nope"}),
    "invocations GET": Case("GET", "/invocations", headers=AUTH),
    # /v2/models/{name}/infer
    "infer with id": post(INFER, {"id": "r1", **TENSORS}),
    "infer without id": post(INFER, TENSORS),
    "infer wrong datatype": post(INFER, {"inputs": _tensors(row(), temp="BYTES")}),
    "infer bad envelope": post(INFER, {"inputs": []}),
    "infer unknown field": post(INFER, {**TENSORS, "extra": 1}),
    "infer malformed json": post(INFER, content=b"["),
    "infer too large": post(INFER, {"inputs": _tensors(row()) * 10, "id": "x" * 100}),
    "infer csv content type": post(INFER, TENSORS, headers={"content-type": "text/csv"}),
    "infer unknown model": post("/v2/models/other/infer", TENSORS),
    "infer escaped model name": post("/v2/models/de%20mand/infer", TENSORS),
    "infer empty model name": post("/v2/models//infer", TENSORS),
    "infer nested model name": post("/v2/models/a/b/infer", TENSORS),
    "infer missing token": anonymous(INFER, TENSORS),
    "infer wrong token": post(INFER, TENSORS, headers={"authorization": "Bearer x"}),
    "infer GET": Case("GET", INFER, headers=AUTH),
}


def _client(store: Store, folder: Path, model: str, lane: bool) -> TestClient:
    settings = make_settings(
        store, folder, model_name=model, token=TOKEN, max_body_bytes=MAX_BODY, fast_lane=lane
    )
    return TestClient(create_app(settings), follow_redirects=False)


@pytest.fixture(scope="module", params=[REGRESSOR, CLASSIFIER, STRICT, "absent"])
def pair(
    request: pytest.FixtureRequest,
    _template_store: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Pair]:
    """A regressor, a classifier, a regressor refusing some nulls and a model that cannot load,
    each served both ways."""
    work = tmp_path_factory.mktemp("lane")
    shutil.copy(_template_store / "mlflow.db", work / "mlflow.db")
    uri = f"sqlite:///{work / 'mlflow.db'}"
    store = Store(uri, _template_store, MlflowClient(tracking_uri=uri))
    model: str = request.param
    with (
        _client(store, work / "lane", model, lane=True) as lane,
        _client(store, work / "routed", model, lane=False) as routed,
    ):
        yield Pair(model, lane, routed)


def _send(client: TestClient, case: Case, model: str) -> httpx.Response:
    return client.request(
        case.method,
        case.path.format(model=model),
        json=case.json,
        content=case.content,
        headers=case.headers,
    )


def _comparable(response: httpx.Response) -> tuple[int, dict[str, str], str]:
    """Status, headers and body, with a request id the service generated masked."""
    headers = dict(response.headers)
    body = response.text
    generated = headers.get("x-request-id", "")
    if len(generated) == 32:  # uuid4().hex: not the client's
        headers["x-request-id"] = "<generated>"
        body = body.replace(generated, "<generated>")
    return response.status_code, headers, body


def _counts(client: TestClient) -> list[tuple[str, dict[str, str], float]]:
    """Request and error counters by route and status (latencies differ, counts must not)."""
    metrics = client.app.state.metrics  # type: ignore[attr-defined]
    return [
        (sample.name, sample.labels, sample.value)
        for counter in (metrics.requests, metrics.errors)
        for family in counter.collect()
        for sample in family.samples
        if sample.name.endswith("_total")
    ]


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_lane_answers_as_the_routed_path(pair: Pair, case: Case) -> None:
    lane = _send(pair.lane, case, pair.model)
    routed = _send(pair.routed, case, pair.model)
    assert _comparable(lane) == _comparable(routed)
    assert _counts(pair.lane) == _counts(pair.routed)


def test_cases_cover_every_route_the_lane_serves() -> None:
    paths = {"/predict": predict, "/invocations": invocations, INFER: infer}
    assert set(LANE_ENDPOINTS) == set(paths.values())
    for path in paths:
        sent = [c for c in CASES.values() if c.path == path and c.method == "POST"]
        assert len(sent) >= 8, path


@pytest.fixture
def answered(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Route templates of the requests the lane answered itself."""
    paths: list[str] = []
    answer = FastLane._answer

    async def spy(self: FastLane, call: fast_lane.LaneCall, *args: Any) -> None:
        paths.append(call.route.path)
        await answer(self, call, *args)

    monkeypatch.setattr(FastLane, "_answer", spy)
    return paths


def test_lane_answers_its_routes_and_passes_the_rest_on(
    store: Store, tmp_path: Path, answered: list[str]
) -> None:
    with TestClient(create_app(make_settings(store, tmp_path))) as client:
        client.post("/predict", json={"records": [row()]})
        client.post("/invocations", json={"instances": [row()]})
        client.post(f"/v2/models/{REGRESSOR}/infer", json={"inputs": _tensors(row())})
        client.get("/health")
        client.post("/feedback", json={"request_id": "a", "label": 1.0})
    assert answered == ["/predict", "/invocations", "/v2/models/{name}/infer"]


def test_lane_steps_aside_under_dependency_overrides(
    store: Store, tmp_path: Path, answered: list[str]
) -> None:
    app = create_app(make_settings(store, tmp_path))

    async def refuse(request: Request) -> None:
        raise HTTPException(418, "overridden")

    app.dependency_overrides[require_token] = refuse
    with TestClient(app) as client:
        response = client.post("/predict", json={"records": [row()]})
    assert (answered, response.status_code) == ([], 418)


def _routes(*extra: APIRoute, dependencies: list[Any] | None = None) -> list[APIRoute]:
    return [
        *extra,
        APIRoute("/predict", predict, methods=["POST"], dependencies=dependencies),
        APIRoute("/invocations", invocations, methods=["POST"]),
        APIRoute("/v2/models/{name}/infer", infer, methods=["POST"]),
    ]


def test_an_earlier_route_that_may_match_goes_to_the_router() -> None:
    async def anything(path: str) -> dict[str, str]:
        return {}

    catch_all = APIRoute("/{path}", anything, methods=["POST"])
    health = APIRoute("/health", anything, methods=["GET"])
    table = lane_table(_routes(health, catch_all))
    assert [None if call is None else call.route.path for _, call in table] == [
        None,  # the catch-all, tried first as the router would; the GET route cannot match
        "/predict",
        "/invocations",
        "/v2/models/{name}/infer",
    ]
    assert table[0][0]({"type": "http", "method": "POST", "path": "/predict"})[0] is Match.FULL


def test_a_route_the_lane_cannot_call_as_fastapi_does_is_refused() -> None:
    def sync_check(request: Request, limit: int = 3) -> None:
        return None

    with pytest.raises(TypeError, match=r"/predict: .*sync_check"):
        lane_table(_routes(dependencies=[Depends(sync_check)]))


def test_a_missing_lane_endpoint_is_refused() -> None:
    with pytest.raises(TypeError, match="infer"):
        lane_table(_routes()[:2])
