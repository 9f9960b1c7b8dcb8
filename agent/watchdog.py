"""A watchdog for driver calls that can hang (NVML on a sick GPU or driver).

Each key (a GPU, the event poller, init) gets one long-lived worker thread. A *job* runs there and
makes its driver calls through :meth:`CallTracker.call`, which records which function is in flight
and since when. The caller waits for the job; once a single call has been in flight longer than the
timeout, the job is abandoned: the caller keeps what the job produced so far, the hung function is
reported, and the cycle goes on. While that worker is still stuck, new jobs for the same key are
refused (no pile-up of stuck threads); when the hung call finally returns, the job sees it was
abandoned, stops, and the worker is usable again.

One thread hand-off per job instead of per call keeps the overhead to microseconds per cycle.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Abandoned(Exception):
    """Raised inside a job whose caller stopped waiting for it."""


class CallTracker:
    __slots__ = ("abandoned", "function", "started")

    def __init__(self) -> None:
        self.function: str | None = None
        self.started = 0.0
        self.abandoned = False

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        if self.abandoned:
            raise Abandoned
        self.started = time.monotonic()
        self.function = fn.__name__
        try:
            result = fn(*args)
        finally:
            self.function = None
        if self.abandoned:  # the answer came after the caller gave up on it
            raise Abandoned
        return result


@dataclass(slots=True)
class Outcome(Generic[T]):
    value: T | None = None
    error: BaseException | None = None
    hung_function: str | None = None  # set when the job was abandoned
    busy: bool = False  # set when the key's worker was still stuck and the job never started

    @property
    def ok(self) -> bool:
        return self.error is None and self.hung_function is None and not self.busy


class _Job(Generic[T]):
    __slots__ = ("done", "error", "fn", "tracker", "value")

    def __init__(self, fn: Callable[[CallTracker], T]) -> None:
        self.fn = fn
        self.tracker = CallTracker()
        self.done = threading.Event()
        self.value: T | None = None
        self.error: BaseException | None = None


class _Worker:
    def __init__(self, name: str) -> None:
        self.jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.busy = False
        self.thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            try:
                job.value = job.fn(job.tracker)
            except BaseException as exc:  # handed to the caller, never lost
                job.error = exc
            finally:
                self.busy = False
                job.done.set()


class Watchdog:
    def __init__(self, timeout_s: float, name: str = "watchdog") -> None:
        self.timeout_s = timeout_s
        self.name = name
        self._workers: dict[object, _Worker] = {}
        self._lock = threading.Lock()

    def submit(self, key: object, fn: Callable[[CallTracker], T]) -> _Job[T] | None:
        """Start ``fn`` on ``key``'s worker; None while that worker is still stuck in an abandoned call."""
        with self._lock:
            worker = self._workers.get(key)
            if worker is None:
                worker = self._workers[key] = _Worker(f"{self.name}-{key}")
            if worker.busy:
                return None
            worker.busy = True
        job: _Job[T] = _Job(fn)
        worker.jobs.put(job)
        return job

    def wait(self, job: _Job[T] | None, timeout_s: float | None = None) -> Outcome[T]:
        if job is None:
            return Outcome(busy=True)
        limit = self.timeout_s if timeout_s is None else timeout_s
        poll = max(0.005, min(0.05, limit / 4))
        tracker = job.tracker
        while not job.done.wait(poll):
            function, started = tracker.function, tracker.started
            if function is not None and time.monotonic() - started >= limit:
                tracker.abandoned = True
                if job.done.is_set():  # it finished in the meantime after all
                    break
                return Outcome(hung_function=function)
        return Outcome(value=job.value, error=job.error)

    def run(self, key: object, fn: Callable[[CallTracker], T], timeout_s: float | None = None) -> Outcome[T]:
        return self.wait(self.submit(key, fn), timeout_s)

    def stuck_keys(self) -> list[object]:
        with self._lock:
            return [k for k, w in self._workers.items() if w.busy]

    def close(self) -> None:
        """Stop idle workers; a worker stuck in a hung call is a daemon thread and exits with the process."""
        with self._lock:
            workers, self._workers = list(self._workers.values()), {}
        for w in workers:
            w.jobs.put(None)
