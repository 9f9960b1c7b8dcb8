"""Shared pieces of the reliability suite: collectors in process and as subprocesses, bounded waits."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from collector.config import CollectorConfig
from collector.server import Collector
from tests.conftest import REPO, free_port
from tests.helpers import wait_for as shared_wait_for
from tests.otlp_clients import RunningCollector, get

TOKENS = {"tok-alpha-7f3e": "alpha", "tok-beta-91ac": "beta"}
ALPHA, BETA = "tok-alpha-7f3e", "tok-beta-91ac"


def wait_for(condition: Callable[[], object], timeout: float = 20.0, what: str = "condition", step: float = 0.1):
    """tests.helpers.wait_for with the longer default these fault tests need."""
    return shared_wait_for(condition, timeout, what, step)


def inprocess_config(tmp: Path, tokens: dict[str, str] | None = None) -> CollectorConfig:
    c = CollectorConfig(data_dir=str(tmp))
    c.otlp.grpc_listen = f"127.0.0.1:{free_port()}"
    c.otlp.http_listen = f"127.0.0.1:{free_port()}"
    c.api.listen = f"127.0.0.1:{free_port()}"
    c.auth.mode = "tokens"
    path = tmp / "tokens.yaml"
    path.write_text("".join(f"{k}: {v}\n" for k, v in (tokens or TOKENS).items()))
    c.auth.tokens_file = str(path)
    c.writer.flush_interval_s = 0.1
    c.shutdown_deadline_s = 5
    return c


class InProcess(RunningCollector):
    """A started in-process Collector and its ports."""

    default_token = ALPHA
    default_timeout = 30.0

    def __init__(self, config: CollectorConfig, store=None) -> None:
        collector = Collector(config, store=store)
        collector.start()
        wait_for(lambda: collector.pipeline.store is not None, what="store connected")
        super().__init__(collector)

    def stop(self) -> None:
        self.c.stop()


class CollectorProcess:
    """``fleetpulse collector`` as a real subprocess (kill -9 / SIGTERM / rlimits), with its log captured."""

    def __init__(self, tmp: Path, extra_yaml: str = "", auth: bool = False, env: dict[str, str] | None = None):
        self.tmp = tmp
        self.grpc, self.http, self.api = free_port(), free_port(), free_port()
        self.config = tmp / "collector.yaml"
        self.log = tmp / "collector.log"
        self.env = env or {}
        auth_yaml = ""
        if auth:
            tokens = tmp / "tokens.yaml"
            tokens.write_text("".join(f"{k}: {v}\n" for k, v in TOKENS.items()))
            auth_yaml = f"auth: {{mode: tokens, tokens_file: {tokens}}}\n"
        self.config.write_text(
            f"data_dir: {tmp / 'data'}\n"
            f"otlp: {{grpc_listen: 127.0.0.1:{self.grpc}, http_listen: 127.0.0.1:{self.http}}}\n"
            f"api: {{listen: 127.0.0.1:{self.api}}}\n"
            f"shutdown_deadline_s: 5\n{auth_yaml}{extra_yaml}"
        )
        self.proc: subprocess.Popen | None = None

    def start(self, preexec_fn: Callable[[], None] | None = None) -> CollectorProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "agent.cli", "--log-level", "info", "collector", "--config", str(self.config)],
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=preexec_fn,  # only resource limits, set before exec
            )
        return self

    def wait_ready(self, timeout: float = 60, path: str = "/readyz") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, "collector exited:\n" + self.log_tail()
            try:
                if get(self.api, path, timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError("collector not ready:\n" + self.log_tail())

    def log_tail(self, n: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def terminate(self, timeout: float = 30) -> int:
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(timeout)

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
