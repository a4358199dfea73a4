"""deployments.setup: automations that say what they do, and no variable nothing reads."""

from __future__ import annotations

from typing import cast

import pytest
import yaml
from prefect.automations import Automation
from prefect.client.orchestration import get_client
from prefect.variables import Variable

from deployments.setup import STALE_VARIABLE, ensure_notifications, main
from tests.conftest import ROOT


def test_the_retrain_trigger_in_prefect_yaml_says_what_it_does() -> None:
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    triggers = {t["name"]: t for d in spec["deployments"] for t in d.get("triggers", [])}
    # Its description becomes the automation's, instead of the UI's bare "A custom trigger".
    assert (
        "Retrain the model a monitoring run found drifting"
        in (triggers["retrain-on-drift"]["description"])
    )


def test_notification_automations_are_described_on_the_server() -> None:
    created = ensure_notifications("http://127.0.0.1:9/hook")
    assert len(created) == 2
    for name in ("mlops: model drift or decay", "mlops: flow run failed"):
        automation = cast(Automation, Automation.read(name=name))
        assert "Notify when" in automation.description, name


def test_setup_sets_no_variable_and_removes_the_stale_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MLOPS_NOTIFY_WEBHOOK_URL", raising=False)
    monkeypatch.delenv("MLOPS_SERVE_TOKEN", raising=False)
    Variable.set(STALE_VARIABLE, "bikeshare-demand", overwrite=True)  # an older set-up's

    main()

    assert f"variable {STALE_VARIABLE}: removed" in capsys.readouterr().out
    assert Variable.get(STALE_VARIABLE) is None
    with get_client(sync_client=True) as client:
        assert STALE_VARIABLE not in [v.name for v in client.read_variables()]
