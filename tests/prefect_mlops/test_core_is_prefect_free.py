"""The core library knows nothing of Prefect: importing all of it imports no Prefect module."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import prefect_mlops

# The command line is the package's entry point: it starts flows, so it may import them lazily.
ENTRY_POINTS = {"prefect_mlops.cli"}


def core_modules() -> list[str]:
    root = Path(prefect_mlops.__file__).parent
    names = [
        info.name
        for info in pkgutil.walk_packages([str(root)], prefix="prefect_mlops.")
        if info.name not in ENTRY_POINTS
    ]
    return sorted(names)


def test_the_core_has_modules_to_check():
    assert len(core_modules()) > 20


def test_importing_every_core_module_imports_no_prefect():
    code = (
        "import importlib, sys\n"
        f"for name in {core_modules()!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m == 'prefect' or m.startswith('prefect.'))[:5])\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tasks', 'flows')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    prefect_modules, orchestration = done.stdout.strip().splitlines()[-2:]
    assert prefect_modules == "[]"
    assert orchestration == "[]"
