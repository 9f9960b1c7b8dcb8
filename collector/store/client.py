"""Shared clickhouse-connect clients, one per (DSN, database) in a process.

chDB locks its data directory per process, so every user of one path in this process must share the
engine: :func:`connect` hands out one client per (DSN, database) with a reference count, and
:func:`release` closes it when the last user is done. Connection failures raise
:class:`StoreUnavailable` with the DSN (password masked) in the message.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from collector.store.errors import StoreUnavailable
from collector.store.settings import StorageSettings

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

_lock = threading.Lock()


@dataclass
class _Entry:
    client: Client
    users: int


_clients: dict[tuple[str, str], _Entry] = {}


def masked(dsn: str) -> str:
    """The DSN with any password replaced by ``***``, for messages and logs."""
    return re.sub(r"(//[^:/@]+:)[^@]*@", r"\1***@", dsn)


def _key(settings: StorageSettings) -> tuple[str, str]:
    target = "chdb://" + settings.chdb_path if settings.is_chdb else settings.dsn
    return target, settings.database


def _open(settings: StorageSettings) -> Client:
    import clickhouse_connect
    from clickhouse_connect.driver.exceptions import ClickHouseError

    try:
        if settings.is_chdb:
            os.makedirs(settings.chdb_path, exist_ok=True)
            open_paths = {key[0] for key in _clients if key[0].startswith("chdb://")}
            if open_paths and "chdb://" + settings.chdb_path not in open_paths:
                raise StoreUnavailable(
                    f"storage.dsn {settings.dsn!r}: this process already holds chDB path(s) {sorted(open_paths)}; "
                    "chDB opens one path per process, close the other store first"
                )
            client = clickhouse_connect.get_client(dsn="chdb://" + settings.chdb_path)
        else:
            client = clickhouse_connect.get_client(
                dsn=settings.dsn, connect_timeout=5, send_receive_timeout=300, autogenerate_session_id=False
            )
        _select_database(client, settings)
        return client
    except ClickHouseError as exc:
        raise StoreUnavailable(f"cannot connect to storage.dsn {masked(settings.dsn)}: {exc}") from exc
    except OSError as exc:
        raise StoreUnavailable(f"cannot open storage.dsn {masked(settings.dsn)}: {exc}") from exc


def _select_database(client: Client, settings: StorageSettings) -> None:
    """Make ``settings.database`` the client's default, creating it (ON CLUSTER) when missing."""
    exists = client.query(
        "SELECT count() FROM system.databases WHERE name = {db:String}", parameters={"db": settings.database}
    ).result_rows[0][0]
    if not exists:
        on_cluster = f" ON CLUSTER {settings.cluster}" if settings.cluster else ""
        client.command(f"CREATE DATABASE IF NOT EXISTS {settings.database}{on_cluster}")
    client.database = settings.database


def connect(settings: StorageSettings) -> Client:
    """The process-wide shared client for ``settings.dsn``; pair every call with :func:`release`.

    The client's default database is ``settings.database`` (created when missing), so SQL may name
    tables unqualified (``SELECT ... FROM samples``).
    """
    key = _key(settings)
    with _lock:
        entry = _clients.get(key)
        if entry is None:
            entry = _Entry(_open(settings), 0)
            _clients[key] = entry
        entry.users += 1
        return entry.client


def release(settings: StorageSettings) -> None:
    """Drop one user of the shared client; the last one closes it (and frees the chDB path)."""
    key = _key(settings)
    with _lock:
        entry = _clients.get(key)
        if entry is None:
            return
        entry.users -= 1
        if entry.users <= 0:
            del _clients[key]
            entry.client.close()


def open_clients() -> list[str]:
    """Targets with a live shared client (for diagnostics and tests)."""
    with _lock:
        return [f"{masked(dsn)}#{db}" for dsn, db in _clients]
