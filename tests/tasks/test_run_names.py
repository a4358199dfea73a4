"""Every task run is named after what it does, and its name template can be filled.

Prefect fills `task_run_name` with `str.format(**parameters)` when the run starts: a field that
names no parameter, or an attribute its type lacks, fails the task run itself. So each field's
first part must be a parameter of the task (Prefect fills in defaults) and each attribute must
exist on that parameter's declared type (a pydantic field or a property).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import string
import typing
from typing import Any

import pytest
from prefect import Task
from pydantic import BaseModel

import tasks


def all_tasks() -> list[Task[..., Any]]:
    found: dict[str, Task[..., Any]] = {}
    for info in pkgutil.iter_modules(tasks.__path__):
        module = importlib.import_module(f"tasks.{info.name}")
        for value in vars(module).values():
            if isinstance(value, Task) and value.fn.__module__ == module.__name__:
                found[f"{module.__name__}.{value.fn.__name__}"] = value
    return [found[key] for key in sorted(found)]


def fields(template: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


def attribute_type(owner: Any, attribute: str) -> Any:
    """The declared type of `owner.attribute`, failing when `owner` has no such attribute."""
    owner = typing.get_args(owner)[0] if typing.get_origin(owner) is typing.Union else owner
    assert inspect.isclass(owner), f"cannot check .{attribute} on {owner!r}"
    if issubclass(owner, BaseModel) and attribute in owner.model_fields:
        return owner.model_fields[attribute].annotation
    member = getattr(owner, attribute, None)
    assert isinstance(member, property), f"{owner.__name__} has no attribute {attribute!r}"
    return typing.get_type_hints(member.fget).get("return", Any)


# Tasks left under Prefect's default name (`<function>-<key>`): none.
DEFAULT_NAMED: set[str] = set()


@pytest.mark.parametrize("task", all_tasks(), ids=lambda t: t.fn.__name__)
def test_each_task_run_has_a_name_its_parameters_fill(task: Task[..., Any]) -> None:
    if task.fn.__name__ in DEFAULT_NAMED:
        assert task.task_run_name is None
        return
    assert task.task_run_name is not None, "a task run would be named `<function>-<key>`"
    if callable(task.task_run_name):
        return
    signature = inspect.signature(task.fn)
    hints = typing.get_type_hints(task.fn)
    for field in fields(task.task_run_name):
        root, *attributes = field.replace("[", ".").split(".")
        assert root in signature.parameters, f"{field!r} names no parameter of {task.name}"
        declared = hints[root]
        for attribute in attributes:
            declared = attribute_type(declared, attribute)
