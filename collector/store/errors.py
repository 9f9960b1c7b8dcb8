"""Storage errors: what a caller should retry and what it should not."""

from __future__ import annotations


class StoreError(Exception):
    """Base class of every storage failure."""


class StoreUnavailable(StoreError):
    """The store could not be reached or failed on its side: retry later with the same dedup token."""


class StoreRejected(StoreError):
    """The store (or the conversion before it) refused this batch's content: retrying will not help."""
