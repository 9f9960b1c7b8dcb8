"""Storage settings (the ``storage:`` section of collector.yaml)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

DSN_ENV = "FLEETPULSE_STORAGE_DSN"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class StorageSettings:
    """Where and how samples are stored.

    ``dsn`` is ``chdb:///absolute/path`` (embedded chDB, see :func:`chdb_dsn`) or
    ``http(s)://user:pass@host:8123``. A non-empty ``cluster`` switches the DDL to
    ReplicatedMergeTree + Distributed tables created ON CLUSTER. A TTL of 0 days keeps data forever.
    """

    dsn: str
    database: str = "fleetpulse"
    cluster: str = ""
    ttl_raw_days: int = 15
    ttl_1m_days: int = 90
    ttl_1h_days: int = 730
    ttl_events_days: int = 1825

    def __post_init__(self) -> None:
        if not _IDENTIFIER.match(self.database):
            raise ValueError(
                f"storage.database: {self.database!r} is not a plain identifier (letters, digits, underscore)"
            )
        if self.cluster and not _IDENTIFIER.match(self.cluster):
            raise ValueError(
                f"storage.cluster: {self.cluster!r} is not a plain identifier (letters, digits, underscore)"
            )
        for name in ("ttl_raw_days", "ttl_1m_days", "ttl_1h_days", "ttl_events_days"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(
                    f"storage.ttl_days.{name.removeprefix('ttl_').removesuffix('_days')}: expected a whole number of days >= 0 (0 = keep forever), got {value!r}"
                )
        if not self.dsn.startswith(("chdb:", "http://", "https://")):
            raise ValueError(
                f"storage.dsn: {self.dsn!r} is not supported; expected chdb:///absolute/path or http(s)://host:8123"
            )

    @property
    def is_chdb(self) -> bool:
        return self.dsn.startswith("chdb:")

    @property
    def chdb_path(self) -> str:
        """Absolute data directory of an embedded chDB DSN."""
        if not self.is_chdb:
            raise ValueError(f"storage.dsn {self.dsn!r} is not a chdb:// DSN")
        return os.path.realpath(self.dsn.removeprefix("chdb://"))


def chdb_dsn(path: str | os.PathLike[str]) -> str:
    """``chdb:///abs/path`` for a (possibly relative) directory: relative paths resolve against the cwd."""
    return "chdb://" + str(Path(path).resolve())


def dsn_from_env(default: str) -> str:
    """The DSN to use: ``FLEETPULSE_STORAGE_DSN`` wins over the configured one."""
    return os.environ.get(DSN_ENV) or default
