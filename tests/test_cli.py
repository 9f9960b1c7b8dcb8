from __future__ import annotations

import subprocess
import sys

import pytest

from agent.cli import COMMANDS


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_subcommand_has_help(command: str) -> None:
    out = subprocess.run([sys.executable, "-m", "agent", command, "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert f"fleetpulse {command}" in out.stdout


def test_top_level_help_lists_commands() -> None:
    out = subprocess.run([sys.executable, "-m", "agent", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for command in COMMANDS:
        assert command in out.stdout
