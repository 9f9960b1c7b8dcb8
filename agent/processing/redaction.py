"""Redaction: configured attribute keys are dropped or replaced by a salted hash.

Runs on point, event and resource attributes before anything leaves the node, so OTLP, the
Prometheus endpoint and the on-disk buffer all only ever see the redacted form. A hash keeps
joins possible (the same value hashes the same way under one salt) without revealing the value.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from agent.config import RedactionConfig
from agent.snapshot import Attributes


class Redactor:
    def __init__(self, config: RedactionConfig) -> None:
        self.drop = frozenset(config.drop)
        self.hash = frozenset(config.hash) - self.drop
        self._salt = config.salt.encode()
        self._cache: dict[str, str] = {}

    @property
    def active(self) -> bool:
        return bool(self.drop or self.hash)

    def hashed(self, value: str) -> str:
        cached = self._cache.get(value)
        if cached is None:
            digest = hashlib.sha256(self._salt + b"\0" + value.encode()).hexdigest()[:16]
            cached = f"sha256:{digest}"
            if len(self._cache) < 65536:
                self._cache[value] = cached
        return cached

    def attributes(self, attributes: Attributes) -> Attributes:
        if not self.active or not attributes:
            return attributes
        out = []
        for key, value in attributes:
            if key in self.drop:
                continue
            out.append((key, self.hashed(value) if key in self.hash else value))
        return tuple(out)

    def mapping(self, attributes: Mapping[str, str]) -> dict[str, str]:
        return dict(self.attributes(tuple(sorted(attributes.items()))))
