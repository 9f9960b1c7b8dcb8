"""Shared fixtures and the external-tool rule: skip locally, fail under CI=true."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from bench.common import free_port

REPO = Path(__file__).resolve().parent.parent
TOOLS_BIN = REPO / ".tools" / "bin"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tool(name: str, *candidates: str) -> str:
    """Path of an external tool (promtool, alertmanager, helm...).

    Missing locally → the test is skipped with the reason; missing under CI=true → it fails,
    because `.ci/run` is supposed to have installed it.
    """
    search_path = os.pathsep.join([str(TOOLS_BIN), os.environ.get("PATH", ""), "/usr/bin", "/usr/sbin"])
    for candidate in (name, *candidates):
        found = shutil.which(candidate, path=search_path)
        if found:
            return found
    message = f"{name} not found (looked for {', '.join((name, *candidates))}); .ci/run installs it"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def port() -> int:
    return free_port()
