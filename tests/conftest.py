"""Shared fixtures and the external-tool rule: skip locally, fail under CI=true."""

from __future__ import annotations

import os
import random
import shutil
import socket
from pathlib import Path

import pytest

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


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A free loopback port below the kernel's ephemeral range.

    A port from bind(0) is an ephemeral one: between this check and the server's bind, any outgoing
    connection (a client, gRPC, a child process) may be given the same port. Ports below the range are
    never handed out implicitly, so only an explicit bind can take them; this process never repeats one.
    """
    low = _ephemeral_low()
    rng = random.Random()
    for _ in range(500):
        candidate = rng.randrange(max(1024, low - 12000), low)
        if candidate in _HANDED_OUT:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", candidate))
            except OSError:
                continue
        _HANDED_OUT.add(candidate)
        return candidate
    with socket.socket() as s:  # a crowded range: fall back to the kernel's choice
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def port() -> int:
    return free_port()
