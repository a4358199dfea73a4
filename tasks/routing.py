"""Which deployment an event is addressed to: a model's own, or prefect.yaml's catch-all.

Events that start work (a breach retrains, a blessed challenger is rolled out) name the
deployment that should answer them in a resource label, and every trigger matches its own
deployment's name there, so one event starts one run.
"""

from __future__ import annotations

from prefect import get_client
from prefect.exceptions import ObjectNotFound


def deployment_or_catch_all(own: str, catch_all: str) -> str:
    """`own` (`flow/deployment`) when it is deployed on the server, else `catch_all`."""
    with get_client(sync_client=True) as client:
        try:
            client.read_deployment_by_name(own)
        except ObjectNotFound:
            return catch_all
    return own
