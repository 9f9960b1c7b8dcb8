"""The agent is installed on every node: importing it must not pull in the storage stack."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("chdb", "pyarrow", "pandas", "clickhouse_connect", "uvicorn", "starlette")


def test_agent_import_pulls_no_storage_stack() -> None:
    code = (
        "import importlib, json, pkgutil, sys\n"
        "import agent\n"
        "for m in pkgutil.walk_packages(agent.__path__, 'agent.'):\n"
        "    if m.name.endswith('__main__'): continue\n"
        "    importlib.import_module(m.name)\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_agent_cli_help_loads_no_storage_stack() -> None:
    code = (
        "import sys, json, contextlib, io\n"
        "from agent.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try: main(['agent', '--help'])\n"
        "    except SystemExit: pass\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
