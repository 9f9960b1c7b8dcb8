"""Wires the collector: config → store, WAL, pipeline, receivers, API; runs until SIGTERM, then drains."""

from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path

import uvicorn

from collector.api.audit import AuditLog
from collector.auth import Authenticator, check_bind, grpc_server_credentials
from collector.config import CollectorConfig, parse_listen, storage_settings
from collector.convert import Converter
from collector.limits import Limits, MemoryGuard, RateLimiter, SeriesBudget
from collector.pipeline import Pipeline
from collector.receiver.core import Ingest
from collector.spool.wal import Wal
from collector.telemetry import Telemetry

log = logging.getLogger(__name__)


class _Uvicorn(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the collector handles signals itself
        pass


def _uvicorn(app, listen: str, config: CollectorConfig, name: str) -> _Uvicorn:
    host, port = parse_listen(listen, name)
    tls = config.tls
    kwargs = {}
    if tls.cert_file:
        import ssl

        kwargs = {"ssl_certfile": tls.cert_file, "ssl_keyfile": tls.key_file}
        if tls.client_ca_file:
            kwargs.update(ssl_ca_certs=tls.client_ca_file, ssl_cert_reqs=ssl.CERT_REQUIRED)
    cfg = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=5,
        **kwargs,
    )
    return _Uvicorn(cfg)


class Collector:
    def __init__(self, config: CollectorConfig, store=None) -> None:
        self.config = config
        listens = {
            "otlp.grpc_listen": parse_listen(config.otlp.grpc_listen),
            "otlp.http_listen": parse_listen(config.otlp.http_listen),
            "api.listen": parse_listen(config.api.listen),
        }
        check_bind(config.auth.mode, listens)
        self.auth = Authenticator.from_config(config.auth.mode, config.auth.tokens_file)
        self.telemetry = Telemetry()
        self.limits = Limits.from_config(config.limits)
        Path(config.data_dir).mkdir(parents=True, exist_ok=True)
        self.wal = Wal(config.wal_dir, config.wal.max_bytes, config.wal.segment_bytes, config.wal.fsync)
        self._store = store
        self.converter = Converter(self.limits)
        self.pipeline: Pipeline | None = None
        self._servers: list[_Uvicorn] = []
        self._threads: list[threading.Thread] = []
        self._grpc = None
        self.selfmon = None  # collector.selfmon.SelfMonitor while self_telemetry.enabled
        self._stopped = threading.Event()

    def _open_store(self):
        if self._store is not None:
            return self._store
        from collector.store.errors import StoreUnavailable
        from collector.store.writer import Store

        settings = storage_settings(self.config)
        while True:  # a store that is down at start is an outage like any other: keep accepting into the WAL
            try:
                return Store(settings)
            except StoreUnavailable as exc:
                log.warning("store not reachable yet (%s); retrying in 2 s", exc)
                if self._stopped.wait(2):
                    return None

    def ready(self) -> tuple[bool, str]:
        wal_full = self.wal.bytes / self.config.wal.max_bytes
        if wal_full >= self.config.wal.ready_fraction:
            return False, f"WAL at {wal_full:.0%} of wal.max_bytes"
        store = self.pipeline.store if self.pipeline else None
        if store is None or not store.ping():
            return False, "store not reachable"
        return True, f"store reachable, WAL at {wal_full:.1%}"

    def start(self) -> None:
        pending = self.wal.open()
        if pending:
            log.info("WAL: %d records to replay", len(pending))
        self.pipeline = Pipeline(
            self.wal,
            None,
            self.converter,
            SeriesBudget(self.config.limits.tenant_active_series),
            self.telemetry,
            batch_max_rows=self.config.writer.batch_max_rows,
            flush_interval_s=self.config.writer.flush_interval_s,
        )
        self.pipeline.enqueue_replay(pending)
        self.ingest = Ingest(
            self.wal,
            self.pipeline,
            self.converter,
            self.limits,
            RateLimiter(self.config.limits.rate_points_per_s),
            self.telemetry,
            MemoryGuard(self.config.limits.max_inflight_bytes, self.config.limits.max_memory_bytes),
        )
        if self.config.self_telemetry.enabled:
            from collector.selfmon import SelfMonitor

            st = self.config.self_telemetry
            self.selfmon = SelfMonitor(self.telemetry, self.ingest.export, st.tenant, st.interval_s, self.wal.identity)
            self.selfmon.start()
        from collector.api.app import create_app as create_api
        from collector.receiver.grpc_server import create_server
        from collector.receiver.http import create_app as create_http

        tls = self.config.tls
        creds = grpc_server_credentials(tls.cert_file, tls.key_file, tls.client_ca_file) if tls.cert_file else None
        self._grpc = create_server(self.ingest, self.auth, self.config.otlp.grpc_listen, creds)
        self._grpc.start()
        self._servers.append(
            _uvicorn(create_http(self.ingest, self.auth), self.config.otlp.http_listen, self.config, "otlp.http_listen")
        )
        store_proxy = _LazyStore(self)
        api = create_api(
            store_proxy,
            self.auth,
            self.telemetry,
            self.config.storage.database,
            self.ready,
            self.config.api.max_rows,
            self.config.api.max_execution_s,
            AuditLog(Path(self.config.data_dir) / "audit"),
        )
        self._servers.append(_uvicorn(api, self.config.api.listen, self.config, "api.listen"))
        for server in self._servers:
            t = threading.Thread(target=server.run, name="uvicorn", daemon=True)
            t.start()
            self._threads.append(t)
        for server in self._servers:
            deadline = time.monotonic() + 10
            while not server.started and time.monotonic() < deadline:
                time.sleep(0.02)
            if not server.started:
                raise OSError(f"cannot listen on {server.config.host}:{server.config.port}")

        def writer_start() -> None:
            store = self._open_store()
            if store is None:
                return
            self.pipeline.store = store
            self.pipeline.start()

        threading.Thread(target=writer_start, name="store-open", daemon=True).start()
        log.info(
            "collector up: OTLP gRPC %s, OTLP HTTP %s, API %s, auth %s, WAL %s",
            self.config.otlp.grpc_listen,
            self.config.otlp.http_listen,
            self.config.api.listen,
            self.config.auth.mode,
            self.config.wal_dir,
        )

    def stop(self) -> None:
        """Stop receiving, drain to the store within shutdown_deadline_s, keep the rest in the WAL."""
        deadline = self.config.shutdown_deadline_s
        if self.selfmon is not None:
            self.selfmon.stop()  # its last snapshot goes in before the ingest refuses new data
        self.ingest.draining = True
        self._stopped.set()
        if self._grpc is not None:
            self._grpc.stop(grace=min(5, deadline)).wait(min(5, deadline) + 1)
        self._servers[0].should_exit = True
        drained = True
        if self.pipeline is not None and self.pipeline.store is not None:
            drained = self.pipeline.stop(deadline)
        if not drained:
            log.warning("shutdown deadline reached: %d WAL records remain for the next start", self.pipeline.backlog)
        for server in self._servers:
            server.should_exit = True
        for t in self._threads:
            t.join(6)
        self.wal.close()
        if self.pipeline is not None and self.pipeline.store is not None and self._store is None:
            self.pipeline.store.close()

    def run_forever(self) -> int:
        stop = threading.Event()

        def on_signal(signum, frame) -> None:
            log.info("signal %d: draining", signum)
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        self.start()
        while not stop.wait(1.0):
            pass
        self.stop()
        return 0


class _LazyStore:
    """The API's view of the store, which may still be connecting."""

    def __init__(self, collector: Collector) -> None:
        self._collector = collector

    def __getattr__(self, name: str):
        store = self._collector.pipeline.store if self._collector.pipeline else None
        if store is None:
            from collector.store.errors import StoreUnavailable

            raise StoreUnavailable("store is still connecting")
        return getattr(store, name)
