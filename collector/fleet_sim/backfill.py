"""History backfill for `fleetpulse up`: a small simulated fleet's recent past, through the real write path.

A newcomer's store starts empty and the live agent's first fault comes minutes later, so `fleetpulse up`
on a fresh data directory writes the last ``duration`` of a small fleet (4 nodes x 8 H100s, 60 s interval,
the default fleet fault scenario) ending now, in a background thread, while the live agent and the API
are already up. Points go as OTLP/HTTP protobuf to the collector `up` just started (receiver → limits →
WAL → writer → store), like any agent's.

The backfilled nodes are separate from the live node (``sim-node-0000`` .. ``sim-node-0003``, cluster
``sim-cluster-0``; another prefix if the live host happens to carry one of those names): their GPU UUIDs,
counters and faults are the fleet simulator's, and the live agent's GPUs keep their own.

After the history, the same simulated nodes go on reporting one tick a minute while `up` runs (the plan
is extended past its end: values stay closed-form functions of time, the moved GPU stays moved, the lost
one stays lost), so they do not all turn up as "missing" in `query health` five minutes later. The
scenario's ``node_silent`` fault is left out for the same reason (on 4 nodes it would silence the node
whose GPU has the pending row remap, hiding that verdict).

Once anything was acknowledged, ``<data-dir>/backfill.json`` records it (status ``partial``, then
``done`` or ``interrupted``, and the last tick sent); a data directory with that file, or with any
sample older than an hour, is never backfilled again (the same ticks would be stored twice). A later
`up` on it resumes the simulated nodes where they stopped: it catches up the ticks missed while `up` was
down (at most ``duration`` of them, as agents drain their offline buffers) and goes on live.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import requests

from collector.fleet_sim.generate import Builder, Task, payloads, points_per_node_tick, tasks
from collector.fleet_sim.plan import NS, FleetPlan, FleetSpec, build_plan
from collector.fleet_sim.scenario import load_scenario
from collector.fleet_sim.send import OtlpHttpSender, SendError

NODES = 4
GPUS_PER_NODE = 8
INTERVAL_S = 60.0
NODES_PER_RACK = 2  # two racks, so the scenario's hot rack (rack 1) is half the fleet, not all of it
NVLINKS = 8  # enough for the scenario's CRC burst on link 7; 18 would double the points for little
MARKER = "backfill.json"
OLD_S = 3600  # a store holding samples older than this already has history
MAX_DURATION_S = 7 * 86400  # the collector's default limits.max_past_s
PROGRESS_EVERY_S = 3.0
SENDERS = 2
LEFT_OUT = ("node_silent",)  # see the module docstring

QUERIES = (
    "fleetpulse query throttle --since {since}",
    "fleetpulse query ecc --since {since}",
    "fleetpulse query xid --since {since}",
    "fleetpulse query health --since {since}",
)


class Stopped(Exception):
    """`fleetpulse up` is stopping: the backfill ends where it is."""


def human_duration(seconds: float) -> str:
    """86400 → '24 h', 172800 → '2 d', 1800 → '30 min'."""
    if seconds >= 2 * 86400 and seconds % 86400 == 0:
        return f"{int(seconds // 86400)} d"
    for unit, size in (("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)} {unit}"
    return f"{seconds:g} s"


def since_flag(seconds: float) -> str:
    """A `--since` value that covers the backfilled window."""
    hours = -(-int(seconds) // 3600)
    return f"{hours // 24}d" if hours > 48 and hours % 24 == 0 else f"{hours}h"


def marker_path(data_dir: Path) -> Path:
    return Path(data_dir) / MARKER


def read_marker(data_dir: Path) -> dict[str, Any] | None:
    """The record of an earlier backfill in this data directory (None: there was none)."""
    path = marker_path(data_dir)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:  # unreadable: still proof that a backfill ran here
        return {"status": f"unreadable ({exc})"}


def node_prefix(live_node: str) -> str:
    prefix = "sim-node"
    if live_node.startswith(prefix + "-"):
        prefix = "sim-backfill-node"  # never write history under the live agent's node name
    return prefix


def fleet_spec(duration_s: float, prefix: str, seed: int = 0, end_unix_s: float | None = None) -> FleetSpec:
    return FleetSpec(
        nodes=NODES,
        gpus_per_node=GPUS_PER_NODE,
        duration_s=duration_s,
        interval_s=INTERVAL_S,
        seed=seed,
        nodes_per_rack=NODES_PER_RACK,
        nvlinks=NVLINKS,
        node_prefix=prefix,
        end_unix_s=end_unix_s,
    )


def scenario() -> list:
    return [f for f in load_scenario() if f.kind not in LEFT_OUT]


def resumed_plan(marker: dict[str, Any]) -> FleetPlan:
    """The plan an earlier backfill in this data dir used (same ticks, same faults), from its marker."""
    try:
        end_ns = int(marker["window_end_ns"])
        spec = fleet_spec(float(marker["duration_s"]), str(marker["node_prefix"]), int(marker["seed"]), end_ns / NS + 1)
        plan = build_plan(spec, scenario())
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{MARKER}: cannot rebuild the simulated fleet from it ({exc!r})") from None
    if plan.end_ns != end_ns:
        raise ValueError(f"{MARKER}: window_end_ns {end_ns} is not on a {INTERVAL_S:g} s tick")
    return plan


class _StoppableSender(OtlpHttpSender):
    """The simulator's sender, whose retry waits end as soon as `up` stops."""

    def __init__(self, endpoint: str, stop: threading.Event) -> None:
        super().__init__(endpoint, retry_deadline_s=60.0)
        self._stop = stop

    def _retry_wait(self, seconds: float) -> None:
        with self._lock:
            self.stats.retries += 1
        if self._stop.wait(seconds):
            raise Stopped


@dataclass(slots=True)
class Outcome:
    status: str  # done | interrupted | skipped | failed
    reason: str = ""
    points: int = 0  # acknowledged by the collector
    events: int = 0
    seconds: float = 0.0


class Backfill:
    """The simulated fleet's history, then its live ticks, in a thread; set ``stop`` and `join()` to end it.

    ``marker`` (the record of an earlier backfill in this data dir) resumes that fleet instead of
    starting a new history.
    """

    def __init__(
        self,
        data_dir: Path,
        otlp_http_url: str,
        api_url: str,
        duration_s: float,
        stop: threading.Event,
        out: TextIO,
        live_node: str,
        seed: int = 0,
        now_s: float | None = None,
        marker: dict[str, Any] | None = None,
        query_suffix: str = "",
    ) -> None:
        self.data_dir = Path(data_dir)
        self.otlp_http_url = otlp_http_url
        self.api_url = api_url.rstrip("/")
        self.stop = stop
        self.out = out
        self.query_suffix = query_suffix
        self.marker = dict(marker) if marker else None
        if self.marker is None:
            self.duration_s = duration_s
            self.seed = seed
            self.plan: FleetPlan = build_plan(fleet_spec(duration_s, node_prefix(live_node), seed), scenario(), now_s)
            self.last_tick = -1
        else:
            self.plan = resumed_plan(self.marker)
            self.duration_s = float(self.marker["duration_s"])
            self.seed = int(self.marker["seed"])
            # Never before the history's end: an interrupted history is not redone (it is partly stored).
            self.last_tick = max(int(self.marker.get("last_tick", -1)), self.plan.n_ticks - 1)
        self.resuming = self.marker is not None
        self.sender = _StoppableSender(self.otlp_http_url, self.stop)
        self.outcome: Outcome | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ description
    @property
    def nodes_text(self) -> str:
        spec = self.plan.spec
        return (
            f"{spec.nodes} simulated nodes x {spec.gpus_per_node} GPUs "
            f"({self.plan.node_name(0)} .. {self.plan.node_name(spec.nodes - 1)}, cluster {self.plan.cluster_name(0)})"
        )

    @property
    def last_time(self) -> str:
        return self.plan.iso(self.plan.tick_ns(self.last_tick))

    # ------------------------------------------------------------------ thread
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="fleetpulse-backfill", daemon=True)
        self._thread.start()

    def join(self, timeout: float) -> bool:
        """True when the thread has ended."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _say(self, line: str) -> None:
        try:
            self.out.write(line + "\n")
            self.out.flush()
        except (OSError, ValueError):  # stdout closed (piped into head...): keep writing history
            pass

    def _run(self) -> None:
        try:
            self.outcome = self.run()
            if self.outcome.status in ("done", "resumed"):
                self.live()
        except Stopped:
            pass
        except Exception as exc:  # never take `up` down: the live agent and API keep running
            self.outcome = Outcome("failed", f"{exc.__class__.__name__}: {exc}")
            self._say(f"backfill failed: {self.outcome.reason}; the live agent keeps running")

    # ------------------------------------------------------------------ history
    def run(self) -> Outcome:
        if self.resuming:
            return Outcome("resumed")
        try:
            held = self.store_has_history()
        except Stopped:
            return Outcome("interrupted", "stopped before the store answered")
        if held:
            self._say(
                f"backfill skipped: the store in {self.data_dir} already holds samples older than {OLD_S // 3600} h"
            )
            return Outcome("skipped", "the store already holds history")
        return self.send()

    def store_has_history(self, timeout_s: float = 120.0) -> bool:
        """Ask the collector's read API whether any sample is older than an hour (retries while the store opens)."""
        sql = f"SELECT 1 FROM samples WHERE ts < now() - INTERVAL {OLD_S} SECOND LIMIT 1"
        deadline = time.monotonic() + timeout_s
        last = ""
        while time.monotonic() < deadline:
            try:
                resp = requests.get(f"{self.api_url}/api/v1/query", params={"sql": sql}, timeout=30)
                if resp.status_code == 200:
                    return bool(resp.json()["rows"])
                last = f"HTTP {resp.status_code}: {resp.text[:200]}"
                if resp.status_code != 503:  # 503: the store is still opening
                    break
            except requests.RequestException as exc:
                last = exc.__class__.__name__
            if self.stop.wait(0.5):
                raise Stopped
        raise RuntimeError(f"could not ask the read API {self.api_url} whether the store holds history ({last})")

    def send(self) -> Outcome:
        plan = self.plan
        task_list = tasks(plan)
        total = sum(points_per_node_tick(plan) * (t.kb - t.ka) for t in task_list)
        what = f"{human_duration(self.duration_s)} of history for {plan.spec.nodes} nodes"
        started = time.monotonic()
        last_say = started
        acked = events = 0
        status, reason = "done", ""
        self._say(f"backfilling {what}: 0% (about {total / 1e6:.1f} M points)")
        in_flight: deque[tuple[Future, int, int]] = deque()

        def settle(item: tuple[Future, int, int]) -> None:
            nonlocal acked, events
            future, n_points, n_events = item
            future.result()  # SendError / Stopped propagate
            first = acked == 0 and events == 0
            acked += n_points
            events += n_events
            if first:  # something is stored now: a later `up` must not write this window again
                self._write_marker("partial", acked, events, started)

        gen = payloads(plan, task_list, workers=0)  # this thread: no child processes to orphan on Ctrl-C
        pool = ThreadPoolExecutor(max_workers=SENDERS, thread_name_prefix="fleetpulse-backfill-send")
        try:
            for payload in gen:
                if self.stop.is_set():
                    raise Stopped
                if payload.metrics is not None:
                    in_flight.append((pool.submit(self.sender.send_metrics, payload.metrics), payload.points, 0))
                if payload.logs is not None:
                    in_flight.append((pool.submit(self.sender.send_logs, payload.logs), 0, payload.events))
                while len(in_flight) > SENDERS * 2:
                    settle(in_flight.popleft())
                now = time.monotonic()
                if now - last_say >= PROGRESS_EVERY_S:
                    last_say = now
                    frac = min(acked / total, 0.99) if total else 0.0
                    rate = acked / (now - started)
                    eta = (total - acked) / rate if rate > 0 else 0.0
                    self._say(f"backfilling {what}: {frac:.0%}  ({acked / 1e6:.1f} M points, about {eta:.0f} s left)")
            while in_flight:
                settle(in_flight.popleft())
        except Stopped:
            status, reason = "interrupted", "fleetpulse up stopped"
        except SendError as exc:
            status, reason = "failed", str(exc)
        finally:
            gen.close()
            # Requests already on the wire finish (their points are acknowledged and stored), the rest are dropped.
            for future, n_points, n_events in in_flight:
                future.cancel()
                try:
                    future.result(timeout=90)
                    acked += n_points
                    events += n_events
                except Exception:  # cancelled, stopped or refused: not acknowledged
                    pass
            pool.shutdown(wait=True, cancel_futures=True)
        seconds = time.monotonic() - started
        acked -= self.sender.stats.rejected_points  # partial success: counted by the collector, not stored
        events -= self.sender.stats.rejected_logs
        if status == "done":
            self.last_tick = plan.n_ticks - 1
        if acked or events:
            self._write_marker(status, acked, events, started, reason)
        if status == "done":
            self._wait_stored(acked, events)
            self._say(self._done_text(acked, events, time.monotonic() - started))
        elif status == "interrupted":
            pct = acked / total if total else 0.0
            self._say(
                f"backfill interrupted at {pct:.0%}: {acked:,} points acknowledged (they stay stored); "
                f"{MARKER} keeps it from running again on this data dir"
            )
        else:
            self._say(f"backfill failed: {reason}; the live agent keeps running")
        return Outcome(status, reason, acked, events, seconds)

    def _wait_stored(self, points: int, events: int, timeout_s: float = 120.0) -> None:
        """Acknowledged means in the WAL; wait until the read API counts it all, so the queries it suggests see it."""
        plan = self.plan
        where = f"node LIKE '{plan.spec.node_prefix}-%' AND ts <= fromUnixTimestamp64Nano({plan.end_ns})"
        sql = f"SELECT (SELECT count() FROM samples WHERE {where}), (SELECT count() FROM events WHERE {where})"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                resp = requests.get(f"{self.api_url}/api/v1/query", params={"sql": sql}, timeout=30)
                if resp.status_code == 200:
                    stored_points, stored_events = resp.json()["rows"][0]
                    if stored_points >= points and stored_events >= events:
                        return
            except requests.RequestException:
                pass
            if self.stop.wait(0.3):
                raise Stopped
        self._say(f"backfill: not everything acknowledged is queryable yet after {timeout_s:.0f} s (still writing)")

    def _done_text(self, points: int, events: int, seconds: float) -> str:
        since = since_flag(self.duration_s)
        tries = "\n".join(f"  {q.format(since=since)}{self.query_suffix}" for q in QUERIES)
        return (
            f"backfill done: {human_duration(self.duration_s)} of history for {self.nodes_text}, "
            f"{points:,} points and {events} events in {seconds:.0f} s; they go on reporting every "
            f"{INTERVAL_S:g} s. Try:\n{tries}"
        )

    # ------------------------------------------------------------------ live ticks
    def live(self) -> None:
        """Send each new tick of the simulated nodes once its time has come, until `stop`."""
        plan = self.plan
        builder = Builder(plan)
        max_catchup = max(1, int(min(self.duration_s, MAX_DURATION_S - OLD_S) * NS // plan.interval_ns))
        if self.resuming:
            k_now = (time.time_ns() - plan.start_ns) // plan.interval_ns
            missed = min(max(0, k_now - self.last_tick), max_catchup)
            self._say(
                f"the {plan.spec.nodes} simulated nodes go on reporting"
                + (f": catching up the {missed} min missed since {self.last_time}" if missed else "")
            )
        while True:
            k_now = (time.time_ns() - plan.start_ns) // plan.interval_ns
            if k_now > self.last_tick:
                k_from = max(self.last_tick + 1, k_now - max_catchup + 1)
                plan.n_ticks = max(plan.n_ticks, k_now + 1)  # extend the plan: faults keep their ticks
                self._send_ticks(builder, k_from, k_now + 1)
                self.last_tick = k_now
                self._update_marker_tick()
            wake_ns = plan.tick_ns(self.last_tick + 1) + NS // 2
            if self.stop.wait(max(0.5, (wake_ns - time.time_ns()) / NS)):
                return

    def _send_ticks(self, builder: Builder, ka: int, kb: int) -> None:
        per_chunk = max(1, int(50_000 // points_per_node_tick(self.plan)))
        for a in range(ka, kb, per_chunk):
            for node in range(self.plan.spec.nodes):
                if self.stop.is_set():
                    raise Stopped
                payload = builder.build(Task(node, a, min(kb, a + per_chunk)))
                if payload.metrics is not None:
                    self.sender.send_metrics(payload.metrics)
                if payload.logs is not None:
                    self.sender.send_logs(payload.logs)

    # ------------------------------------------------------------------ marker
    def _write_marker(self, status: str, points: int, events: int, started: float, reason: str = "") -> None:
        plan = self.plan
        record = {
            "status": status,
            "reason": reason,
            "written": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "window_start": plan.iso(plan.start_ns),
            "window_end": plan.iso(plan.end_ns),
            "window_end_ns": plan.end_ns,
            "duration_s": self.duration_s,
            "node_prefix": plan.spec.node_prefix,
            "nodes": [plan.node_name(n) for n in range(plan.spec.nodes)],
            "gpus_per_node": plan.spec.gpus_per_node,
            "interval_s": plan.spec.interval_s,
            "seed": self.seed,
            "scenario": "collector/fleet_sim/scenarios/default_fleet.yaml without " + ", ".join(LEFT_OUT),
            "points_acknowledged": points,
            "events_acknowledged": events,
            "seconds": round(time.monotonic() - started, 1),
            "last_tick": self.last_tick,
        }
        self.marker = record
        self._save_marker()

    def _update_marker_tick(self) -> None:
        if self.marker is None:
            return
        self.marker["last_tick"] = self.last_tick
        self.marker["last_time"] = self.last_time
        self._save_marker()

    def _save_marker(self) -> None:
        assert self.marker is not None
        path = marker_path(self.data_dir)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.marker, indent=2) + "\n")
        os.replace(tmp, path)
