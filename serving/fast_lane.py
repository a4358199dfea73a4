"""The fast lane: the hot POST routes answered without FastAPI's per-request machinery.

What it buys: FastAPI's per-request routing (a regex per declared route, in order) and dependency
solving (an exit stack, parameter validation, a dependency cache) are a measurable share of a
single-row request, which takes about a millisecond here. The lane came with the ONNX binding
call and the timer-driven log writer (commit 0e160d6); with all three, README.md's serving figures
(one worker, wrk with 8 connections, single-row requests): Ridge pipeline on `/invocations`
5,363 requests/s, p50 1.23 ms, p99 5.97 ms, and `/predict` 5,651 requests/s, against 165
requests/s, p50 44.7 ms for `mlflow models serve` (32.6x); HistGradientBoosting 5,442 requests/s
against 109 (50.0x). The lane's own share was not recorded apart; `MLOPS_SERVE_FAST_LANE=false`
with `python -m bench.serving.run` measures it.

It repeats nothing of the routed path; it calls the same code, so it answers exactly as that
path does (tests/serving/test_fast_lane.py checks every route it serves):
- which requests: the declared routes' own matchers, tried in the router's order, so a request
  an earlier route would take goes to the router;
- auth and the predictor: each route's own dependencies (`serving.auth.require_token`,
  `serving.routes.get_predictor`), called in FastAPI's order;
- the answer: the same endpoint function; errors through `serving.responses.error_response`,
  which is also the app's exception handler.
A route whose parameters or dependencies the lane cannot pass exactly as FastAPI would is refused
when the app starts, and with dependency overrides in place every request takes the routed path.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.responses import Response
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from serving.responses import TRANSLATED_ERRORS, error_response
from serving.routes import infer, invocations, predict

# The endpoints the lane answers: the hot, per-row routes.
LANE_ENDPOINTS: tuple[Callable[..., Awaitable[Response]], ...] = (predict, invocations, infer)

Matcher = Callable[[Scope], tuple[Match, Scope]]


@dataclass(frozen=True)
class LaneCall:
    """How FastAPI would call one served route: its dependencies in order, then the endpoint."""

    route: APIRoute
    endpoint: Callable[..., Awaitable[Response]]
    dependencies: tuple[Dependant, ...]
    request_param: str | None


class FastLane:
    """ASGI middleware answering `LANE_ENDPOINTS` itself; every other request goes on."""

    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.table = lane_table(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope["app"].dependency_overrides:
            for matches, call in self.table:
                match, child_scope = matches(scope)
                if match is Match.FULL:
                    if call is None:  # the router would pick this earlier route
                        break
                    scope.update(child_scope)  # as the router does: endpoint, path params, route
                    scope["route"] = call.route
                    await self._answer(call, scope, receive, send)
                    return
        await self.app(scope, receive, send)

    async def _answer(self, call: LaneCall, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        try:
            values: dict[str, Any] = dict(scope["path_params"])
            for dependency in call.dependencies:
                assert dependency.call is not None and dependency.request_param_name is not None
                value = await dependency.call(**{dependency.request_param_name: request})
                if dependency.name is not None:
                    values[dependency.name] = value
            if call.request_param is not None:
                values[call.request_param] = request
            response = await call.endpoint(**values)
        except TRANSLATED_ERRORS as exc:
            response = await error_response(request, exc)
        await response(scope, receive, send)


def lane_table(routes: Sequence[BaseRoute]) -> list[tuple[Matcher, LaneCall | None]]:
    """The routes to try, in the router's order: served ones, and earlier ones that may shadow."""
    contexts = list(iter_route_contexts(routes))  # routes of included routers, as FastAPI sees them
    served = [c for c in contexts if c.endpoint in LANE_ENDPOINTS]
    missing = [e.__name__ for e in LANE_ENDPOINTS if e not in {c.endpoint for c in served}]
    if missing:
        raise TypeError(f"fast lane: no route declares the endpoints {missing}")
    methods = set().union(*(c.methods or () for c in served))
    table: list[tuple[Matcher, LaneCall | None]] = []
    for context in contexts[: contexts.index(served[-1]) + 1]:
        if context in served:
            table.append((context.matches, _lane_call(context)))
        elif context.methods is None or methods & context.methods:
            table.append((context.matches, None))
    return table


def _lane_call(context: RouteContext) -> LaneCall:
    """Refuse a route the lane would answer differently from FastAPI."""
    route, dependant = context.original_route, context.dependant
    problems = _special_params(dependant)
    if any(p.field_info.annotation is not str for p in dependant.path_params):
        problems.append("a path parameter other than str")
    for dependency in dependant.dependencies:
        name = getattr(dependency.call, "__name__", repr(dependency.call))
        if dependency.request_param_name is None or not inspect.iscoroutinefunction(
            dependency.call
        ):
            problems.append(f"dependency {name} is not an async function of the request")
        if dependency.path_params or dependency.dependencies or _special_params(dependency):
            problems.append(f"dependency {name} takes more than the request")
    returns = typing.get_type_hints(context.endpoint).get("return")
    if not inspect.iscoroutinefunction(context.endpoint) or not (
        isinstance(returns, type) and issubclass(returns, Response)
    ):
        problems.append("the endpoint is not an async function returning a Response")
    if problems or not isinstance(route, APIRoute):
        raise TypeError(f"fast lane cannot serve {context.path}: {'; '.join(problems)}")
    endpoint = next(e for e in LANE_ENDPOINTS if e is context.endpoint)
    return LaneCall(route, endpoint, tuple(dependant.dependencies), dependant.request_param_name)


def _special_params(dependant: Dependant) -> list[str]:
    """Parameters FastAPI fills from its own machinery, which the lane does not provide."""
    special = (
        dependant.body_params
        or dependant.query_params
        or dependant.header_params
        or dependant.cookie_params
        or dependant.websocket_param_name
        or dependant.http_connection_param_name
        or dependant.response_param_name
        or dependant.background_tasks_param_name
        or dependant.security_scopes_param_name
    )
    return ["a query, header, cookie, body, response or security parameter"] if special else []
