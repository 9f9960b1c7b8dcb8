"""Audit records for the read API: who asked what, how much came back, how long it took.

Every ``/api/v1/query``, ``/api/v1/reports/<name>`` and ``/api/v1/audit`` request leaves one JSON line
in ``<data_dir>/audit/audit.jsonl`` (rotated at ``max_file_bytes``, ``keep_files`` old files kept):

    {"ts": "2026-11-27T17:50:00.123456+00:00", "tenant": "alpha", "token_id": "3f2a9c1e",
     "endpoint": "query", "fingerprint": "9d1c...", "normalized": "select count ( ) from samples where
     cluster = ?", "rows": 1, "duration_ms": 4.2, "status": 200}

- ``token_id``: the first 8 hex digits of SHA-256(token): names the token without revealing it
  (``none`` without auth).
- ``fingerprint``: SHA-256 (16 hex) of the normalized SQL: literals replaced by ``?``, keywords and
  identifiers lower-cased, whitespace and comments dropped, so the same query with other constants
  has the same fingerprint. ``normalized`` is that text (cut at 2 KiB): it holds no literal values.
- Refused queries are recorded too (``status`` 400, ``error``), so escape attempts are visible.

Records are read back tenant-scoped through ``GET /api/v1/audit`` (a tenant sees only its own).
Lines are written and flushed per request, not fsynced: the audit trail survives a collector crash
(page cache), not a power loss of the last moments.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_LITERAL = re.compile(
    r"""'(?:[^'\\]|\\.|'')*'|\b\d[\w.]*|\b0x[0-9a-f]+""",
    re.IGNORECASE,
)
_COMMENT = re.compile(r"--[^\n]*|#[^\n]*|/\*.*?\*/", re.DOTALL)
_WORD = re.compile(r"`(?:[^`\\]|\\.)*`|\"(?:[^\"\\]|\\.)*\"|\w+|[^\w\s]")


def token_id(authorization: str | None) -> str:
    """A stable, non-secret name for the bearer token in ``authorization`` (``none`` without one)."""
    if not authorization:
        return "none"
    _, _, token = authorization.strip().partition(" ")
    token = token.strip() or authorization.strip()
    return hashlib.sha256(token.encode()).hexdigest()[:8]


def normalize_sql(sql: str) -> str:
    """Literals → ``?``, comments and whitespace out, words lower-cased (quoted identifiers kept)."""
    text = _COMMENT.sub(" ", sql)
    text = _LITERAL.sub("?", text)
    words = []
    for word in _WORD.findall(text):
        words.append(word if word[0] in '`"' else word.lower())
    while words and words[-1] == ";":
        words.pop()
    return " ".join(words)


def fingerprint(sql: str) -> str:
    return hashlib.sha256(normalize_sql(sql).encode()).hexdigest()[:16]


class AuditLog:
    """Append-only JSONL audit trail with size-based rotation; thread-safe."""

    def __init__(self, directory: str | os.PathLike[str], max_file_bytes: int = 64 * 2**20, keep_files: int = 4):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / "audit.jsonl"
        self.max_file_bytes = max_file_bytes
        self.keep_files = keep_files
        self._lock = threading.Lock()

    def record(
        self,
        *,
        tenant: str,
        authorization: str | None,
        endpoint: str,
        sql: str,
        rows: int,
        duration_s: float,
        status: int,
        error: str | None = None,
    ) -> dict[str, Any]:
        normalized = normalize_sql(sql)
        entry: dict[str, Any] = {
            "ts": datetime.now(UTC).isoformat(),
            "tenant": tenant,
            "token_id": token_id(authorization),
            "endpoint": endpoint,
            "fingerprint": hashlib.sha256(normalized.encode()).hexdigest()[:16],
            "normalized": normalized[:2048],
            "rows": rows,
            "duration_ms": round(duration_s * 1000, 3),
            "status": status,
        }
        if error:
            entry["error"] = error[:500]
        line = json.dumps(entry, separators=(",", ":")) + "\n"
        with self._lock:
            self._rotate_if_needed(len(line))
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line)
        return entry

    def _rotate_if_needed(self, incoming: int) -> None:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size + incoming <= self.max_file_bytes:
            return
        for i in range(self.keep_files - 1, 0, -1):
            older = self.dir / f"audit.jsonl.{i}"
            if older.exists():
                older.replace(self.dir / f"audit.jsonl.{i + 1}")
        self.path.replace(self.dir / "audit.jsonl.1")
        (self.dir / f"audit.jsonl.{self.keep_files + 1}").unlink(missing_ok=True)

    def read(self, tenant: str, limit: int = 1000, since: str | None = None) -> list[dict[str, Any]]:
        """The newest ``limit`` records of ``tenant`` (oldest first), optionally only those at or after ``since``."""
        files = [self.dir / f"audit.jsonl.{i}" for i in range(self.keep_files, 0, -1)] + [self.path]
        out: list[dict[str, Any]] = []
        with self._lock:
            for path in files:
                try:
                    lines = path.read_text(encoding="utf-8").splitlines()
                except FileNotFoundError:
                    continue
                for line in lines:
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue  # a line cut by a crash mid-write
                    if entry.get("tenant") != tenant or (since and entry.get("ts", "") < since):
                        continue
                    out.append(entry)
        return out[-limit:] if limit > 0 else []
