"""`simulate-fleet --store DSN`: the collector's own pipeline, in this process, on loopback ports.

Points still take the real write path (OTLP/HTTP receiver → limits → WAL → writer → store); only
the network hop to another machine is missing. The WAL lives in a temporary directory and is empty
once the collector has drained at the end.
"""

from __future__ import annotations

import contextlib
import socket
import tempfile
import time
from collections.abc import Iterator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def local_collector(
    dsn: str, max_past_s: int, wal_dir: str | None = None, fsync: bool = True, self_telemetry: bool = False
) -> Iterator[tuple[object, str]]:
    """A started in-process collector writing to ``dsn``; yields (collector, OTLP/HTTP base URL).

    ``self_telemetry`` off (the default) keeps the store to the simulated fleet: this helper collector's
    own ``fleetpulse.collector.*`` series would add this machine as a live node to every report.

    On exit it drains everything it acknowledged into the store, then releases the store (so the
    caller may open the same chDB path afterwards).
    """
    from collector.config import CollectorConfig, validate
    from collector.server import Collector

    with tempfile.TemporaryDirectory(prefix="fleetpulse-sim-wal-", dir=wal_dir) as tmp:
        config = CollectorConfig(data_dir=tmp)
        config.storage.dsn = dsn
        config.otlp.grpc_listen = f"127.0.0.1:{free_port()}"
        http_port = free_port()
        config.otlp.http_listen = f"127.0.0.1:{http_port}"
        config.api.listen = f"127.0.0.1:{free_port()}"
        config.limits.max_past_s = max(config.limits.max_past_s, max_past_s)
        config.wal.fsync = fsync
        config.self_telemetry.enabled = self_telemetry
        config.shutdown_deadline_s = 600.0  # drain everything: a simulation is only useful complete
        validate(config, "simulate-fleet in-process collector")
        collector = Collector(config)
        collector.start()
        try:
            _wait_store(collector)
            yield collector, f"http://127.0.0.1:{http_port}"
            _wait_drained(collector)
        finally:
            collector.stop()


def _wait_store(collector, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pipeline = collector.pipeline
        if pipeline is not None and pipeline.store is not None:
            return
        time.sleep(0.05)
    raise RuntimeError("the in-process collector could not open the store within 60 s (see the log above)")


def _wait_drained(collector, timeout_s: float = 600.0) -> None:
    deadline = time.monotonic() + timeout_s
    while collector.pipeline.backlog and time.monotonic() < deadline:
        time.sleep(0.05)
