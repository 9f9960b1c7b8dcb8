"""The standard simulated fleet dataset for storage benchmarks (reusable by other benches).

Columnar and fast (numpy), deterministic for a seed: ``nodes`` x 8 GPUs (H100 SXM shape, 18
NVLinks) over ``hours``, with the catalog's GPU metrics at their tiers (fast 10 s, slow 60 s),
timestamps aligned to the tick like the agent's. Values are believable rather than random:

- utilization: per-GPU random walk between jobs, idle gaps at 0, NVML's integer percent / 100;
- power follows utilization (W with NVML's mW resolution, capped at the 700 W limit), temperature
  follows power with a lag (integer degrees), SM clocks drop while power-capped;
- energy integrates power (J, mJ resolution); PCIe byte counters (per direction) and NVLink byte
  counters grow with load: NVML counts NVLink bytes per link and direction in KiB (fields 138/139),
  the agent sends their per-GPU sum every fast cycle (``hw.gpu.nvlink.io``) and each link every
  slow cycle (``hw.gpu.nvlink.link.io``, its default ``nvml.nvlink_link_io: slow``);
- GPM activities (sm, occupancy, tensor, dram) are fractions rounded to 1e-4, as the agent keeps
  them (agent/sources/nvml_device.py ``GPM_DECIMALS``);
- throttle time is seconds with NVML's nanosecond resolution; error counters (ECC, NVLink per link,
  PCIe replays) are integer-valued and mostly flat, with rare increments; limits, clocks max, link
  width/generation, MIG mode are constant.

The shape follows ``fleetpulse agent --once --simulate 8:h100-sxm --sources nvml``: the same
metrics, attributes and series per GPU, at the agent's value resolution.

``generate()`` returns a :class:`Dataset` holding an Arrow table in the ``samples`` column layout
(see collector/store/schema.py) plus the resource attributes each node would send, so the same
points can be laid out in other schemas (the OTel exporter's) for a fair comparison.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from agent.catalog import CATALOG, THROTTLE_REASONS
from agent.sources.nvml_device import GPM_DECIMALS
from collector.store.rows import series_id

FAST_S = 10
SLOW_S = 60
GPUS_PER_NODE = 8
NVLINKS = 18
MODEL = "NVIDIA H100 80GB HBM3"
MEMORY_BYTES = 85_520_809_984  # what NVML reports as total on an H100 80GB
POWER_LIMIT_W = 700.0
IDLE_W = 70.0
SM_MAX_HZ = 1_980_000_000
MEM_CLOCK_HZ = 2_619_000_000


@dataclass
class Dataset:
    samples: pa.Table  # samples layout, sorted by series then time
    resources: dict[str, dict[str, str]]  # node -> resource attributes
    nodes: int
    hours: float
    series: int

    def __len__(self) -> int:
        return self.samples.num_rows


@dataclass
class _Series:
    metric: str
    node: str
    gpu: str
    attributes: dict[str, str]
    values: np.ndarray
    step_s: int
    kind: str
    start_ns: int


def _walk(rng: np.random.Generator, gpus: int, steps: int, sigma: float, lo: float, hi: float) -> np.ndarray:
    """Random walks reflected into [lo, hi]."""
    start = rng.uniform(lo, hi, size=(gpus, 1))
    x = start + np.cumsum(rng.normal(0.0, sigma, size=(gpus, steps)), axis=1)
    span = hi - lo
    x = np.mod(x - lo, 2 * span)
    return lo + np.where(x > span, 2 * span - x, x)


def _idle_mask(rng: np.random.Generator, gpus: int, steps: int) -> np.ndarray:
    """True where a GPU sits between jobs (a few idle gaps of 5-60 minutes per day)."""
    mask = np.zeros((gpus, steps), dtype=bool)
    per_gpu = max(1, int(steps * FAST_S / 86400 * 4))
    for g in range(gpus):
        for _ in range(rng.poisson(per_gpu)):
            at = int(rng.integers(0, steps))
            mask[g, at : at + int(rng.integers(30, 360))] = True
    return mask


def _ema(x: np.ndarray, alpha: float) -> np.ndarray:
    out = np.empty_like(x)
    out[:, 0] = x[:, 0]
    for t in range(1, x.shape[1]):
        out[:, t] = out[:, t - 1] + alpha * (x[:, t] - out[:, t - 1])
    return out


def _rare_counter(rng: np.random.Generator, gpus: int, steps: int, rate_per_step: float) -> np.ndarray:
    """Integer-valued counters that mostly stay flat (errors)."""
    base = rng.integers(0, 3, size=(gpus, 1)).astype(np.float64)
    return base + np.cumsum(rng.poisson(rate_per_step, size=(gpus, steps)), axis=1)


def generate(
    nodes: int = 4, hours: float = 6.0, seed: int = 7, end_ns: int | None = None, tenant: str = "default"
) -> Dataset:
    """The dataset for ``nodes`` x 8 GPUs over ``hours``, ending at ``end_ns`` (default: now, tick-aligned)."""
    import time

    rng = np.random.default_rng(seed)
    gpus = nodes * GPUS_PER_NODE
    fast = int(hours * 3600 / FAST_S)
    slow = int(hours * 3600 / SLOW_S)
    if end_ns is None:
        end_ns = int(time.time()) // SLOW_S * SLOW_S * 1_000_000_000
    t0 = end_ns - fast * FAST_S * 1_000_000_000
    boot_ns = t0 - 86_400 * 1_000_000_000 * 3  # counters started when the driver loaded, 3 days earlier

    node_names = [f"gpu-node-{n:03d}" for n in range(nodes)]
    gpu_uuids = [f"GPU-{rng.integers(0, 2**32):08x}-{n:03d}-{g}" for n in range(nodes) for g in range(GPUS_PER_NODE)]

    idle = _idle_mask(rng, gpus, fast)
    util = np.rint(_walk(rng, gpus, fast, 3.0, 35.0, 100.0))
    util[idle] = 0.0
    mem_util = np.rint(np.clip(util * 0.45 + rng.normal(0, 1.5, util.shape), 0, 100))
    mem_util[idle] = 0.0
    demand = IDLE_W + (POWER_LIMIT_W - IDLE_W) * util / 100.0 * 1.05
    power = np.minimum(demand, POWER_LIMIT_W) + rng.normal(0, 4.0, util.shape)
    power = np.round(np.clip(power, IDLE_W * 0.9, POWER_LIMIT_W), 3)  # mW resolution
    capped = demand >= POWER_LIMIT_W
    energy = np.round(
        rng.uniform(1e5, 5e6, size=(gpus, 1)) + np.cumsum(power * FAST_S, axis=1), 3
    )  # J with mJ resolution
    temp = np.rint(_ema(28.0 + power * 0.07, 0.15))
    mem_temp = temp + 6.0
    sm_clock = np.where(capped, SM_MAX_HZ - 15_000_000 * rng.integers(1, 12, util.shape), SM_MAX_HZ)
    sm_clock = np.where(idle, 345_000_000, sm_clock).astype(np.float64)
    job_mem = rng.integers(40_000, 78_000, size=(gpus, 1)) * 1_048_576.0
    mem_used = np.where(idle, 512 * 1_048_576.0, job_mem * np.ones((1, fast)))
    pcie_rate = util / 100.0 * rng.uniform(2e9, 8e9, size=(gpus, 1))
    nvlink_rate = util / 100.0 * rng.uniform(5e10, 2e11, size=(gpus, 1))
    frac = util / 100.0
    sm = np.clip(frac * 0.92 + rng.normal(0, 0.02, util.shape), 0, 1)
    sm[idle] = 0.0

    series: list[_Series] = []

    def per_gpu(metric: str, values: np.ndarray, attrs: dict[str, str] | None = None, step: int = FAST_S) -> None:
        spec = CATALOG[metric]
        kind = "sum" if spec.is_counter else "gauge"
        for i, uuid in enumerate(gpu_uuids):
            node = node_names[i // GPUS_PER_NODE]
            a = {"gpu.index": str(i % GPUS_PER_NODE), "hw.model": MODEL, **(attrs or {})}
            series.append(_Series(metric, node, uuid, a, values[i], step, kind, boot_ns if spec.is_counter else 0))

    def const(value: float) -> np.ndarray:
        return np.full((gpus, slow), value)

    per_gpu("hw.gpu.utilization", util / 100.0, {"hw.gpu.task": "general"})
    per_gpu("hw.gpu.utilization", mem_util / 100.0, {"hw.gpu.task": "memory"})
    per_gpu("hw.gpu.utilization", np.zeros_like(util), {"hw.gpu.task": "encoder"})
    per_gpu("hw.gpu.utilization", np.zeros_like(util), {"hw.gpu.task": "decoder"})
    per_gpu("hw.gpu.memory.usage", mem_used)
    per_gpu("hw.gpu.memory.free", MEMORY_BYTES - mem_used - 549_453_824.0)
    per_gpu("hw.gpu.power.usage", power)
    per_gpu("hw.gpu.energy", energy)
    per_gpu("hw.gpu.temperature", temp, {"hw.sensor": "gpu"})
    per_gpu("hw.gpu.temperature", mem_temp, {"hw.sensor": "memory"})
    per_gpu("hw.gpu.clock.frequency", sm_clock, {"hw.gpu.clock": "sm"})
    per_gpu("hw.gpu.clock.frequency", np.full_like(util, MEM_CLOCK_HZ), {"hw.gpu.clock": "memory"})
    per_gpu("hw.gpu.performance_state", np.zeros_like(util))
    per_gpu("hw.gpu.lost", np.zeros_like(util))
    for reason in THROTTLE_REASONS:
        active = {"gpu_idle": idle, "sw_power_cap": capped}.get(reason)
        per_gpu(
            "hw.gpu.throttle.active",
            active.astype(np.float64) if active is not None else np.zeros_like(util),
            {"hw.gpu.throttle.reason": reason},
        )
    for reason in ("sw_power_cap", "sw_thermal_slowdown", "hw_thermal_slowdown", "hw_power_brake_slowdown"):
        held = capped * rng.uniform(2.0, 10.0, util.shape) if reason == "sw_power_cap" else np.zeros_like(util)
        held_ns = np.rint(held * 1e9)  # NVML counts throttle time in ns; the agent reports seconds
        per_gpu("hw.gpu.throttle.time", np.cumsum(held_ns, axis=1) / 1e9, {"hw.gpu.throttle.reason": reason})
    per_gpu("hw.gpu.pcie.replays", _rare_counter(rng, gpus, fast, 0.0005))
    for direction, jitter in (("transmit", 1.0), ("receive", 1.1)):
        per_gpu(
            "hw.gpu.pcie.io",
            np.cumsum(np.rint(pcie_rate * jitter * FAST_S * rng.uniform(0.9, 1.1, util.shape)), axis=1),
            {"network.io.direction": direction},
        )
        # NVML counts NVLink throughput per link in KiB (the simulator too): bytes are multiples of 1024.
        nvlink_total = np.zeros_like(util)
        for link in range(NVLINKS):
            kib = nvlink_rate * jitter * FAST_S / NVLINKS / 1024 * rng.uniform(0.9, 1.1, util.shape)
            link_bytes = np.cumsum(np.rint(kib), axis=1) * 1024
            nvlink_total += link_bytes
            per_gpu(  # the slow cycle sends the readings its fast cycle summed (same tick)
                "hw.gpu.nvlink.link.io",
                link_bytes[:, :: SLOW_S // FAST_S][:, :slow],
                {"hw.nvlink.link": str(link), "network.io.direction": direction},
                step=SLOW_S,
            )
        per_gpu("hw.gpu.nvlink.io", nvlink_total, {"network.io.direction": direction})

    def gpm(x: np.ndarray) -> np.ndarray:
        return np.round(np.clip(x, 0, 1), GPM_DECIMALS)

    per_gpu("hw.gpu.sm.activity", gpm(sm))
    per_gpu("hw.gpu.sm.occupancy", gpm(sm * 0.45 + rng.normal(0, 0.01, util.shape)))
    per_gpu("hw.gpu.tensor.activity", gpm(sm * 0.6 + rng.normal(0, 0.02, util.shape)))
    per_gpu("hw.gpu.dram.activity", gpm(mem_util / 100.0 * 0.8 + rng.normal(0, 0.01, util.shape)))

    # Slow tier (60 s).
    per_gpu("hw.gpu.memory.limit", const(MEMORY_BYTES), step=SLOW_S)
    per_gpu("hw.gpu.power.limit", const(POWER_LIMIT_W), step=SLOW_S)
    per_gpu("hw.gpu.clock.max", const(SM_MAX_HZ), {"hw.gpu.clock": "sm"}, step=SLOW_S)
    per_gpu("hw.gpu.clock.max", const(MEM_CLOCK_HZ), {"hw.gpu.clock": "memory"}, step=SLOW_S)
    for ecc_type, rate in (("corrected", 0.002), ("uncorrected", 0.0)):
        for scope in ("volatile", "aggregate"):
            per_gpu(
                "hw.gpu.ecc.errors",
                _rare_counter(rng, gpus, slow, rate),
                {"hw.gpu.ecc.type": ecc_type, "hw.gpu.ecc.scope": scope},
                step=SLOW_S,
            )
        per_gpu("hw.gpu.row_remap.rows", const(0.0), {"hw.gpu.ecc.type": ecc_type}, step=SLOW_S)
    per_gpu("hw.gpu.row_remap.pending", const(0.0), step=SLOW_S)
    per_gpu("hw.gpu.row_remap.failure", const(0.0), step=SLOW_S)
    per_gpu("hw.gpu.recovery_action", const(0.0), step=SLOW_S)
    per_gpu("hw.gpu.mig.mode", const(0.0), step=SLOW_S)
    for state in ("current", "max"):
        per_gpu("hw.gpu.pcie.link.generation", const(5.0), {"hw.pcie.link.state": state}, step=SLOW_S)
        per_gpu("hw.gpu.pcie.link.width", const(16.0), {"hw.pcie.link.state": state}, step=SLOW_S)
    for link in range(NVLINKS):
        per_gpu("hw.gpu.nvlink.state", const(1.0), {"hw.nvlink.link": str(link)}, step=SLOW_S)
        for err in ("replay", "recovery", "crc_flit", "crc_data"):
            per_gpu(
                "hw.gpu.nvlink.errors",
                _rare_counter(rng, gpus, slow, 0.0003 if err == "crc_flit" else 0.0),
                {"hw.nvlink.link": str(link), "hw.error.type": err},
                step=SLOW_S,
            )

    resources = {
        node: {
            "host.name": node,
            "k8s.node.name": node,
            "k8s.cluster.name": "train-a",
            "rack": f"r{i // 4:02d}",
            "service.name": "fleetpulse-agent",
        }
        for i, node in enumerate(node_names)
    }
    return Dataset(_to_arrow(series, t0, tenant, "train-a"), resources, nodes, hours, len(series))


def _to_arrow(series: list[_Series], t0: int, tenant: str, cluster: str) -> pa.Table:
    import pyarrow.compute as pc

    counts = np.array([len(s.values) for s in series], dtype=np.int64)
    total = int(counts.sum())
    idx = pa.array(np.repeat(np.arange(len(series), dtype=np.int32), counts))
    ts_ms = np.concatenate(
        [t0 // 1_000_000 + np.arange(len(s.values), dtype=np.int64) * s.step_s * 1000 for s in series]
    )

    def dim(values: list[str]) -> pa.Array:
        enc = pa.array(values, type=pa.string()).dictionary_encode()
        return pa.DictionaryArray.from_arrays(pc.take(enc.indices, idx), enc.dictionary)

    attrs = pa.array([list(s.attributes.items()) for s in series], type=pa.map_(pa.string(), pa.string()))
    sids = [series_id(tenant, s.metric, cluster, s.node, s.gpu, s.attributes) for s in series]
    table = pa.table(
        {
            "tenant": dim([tenant] * len(series)),
            "metric": dim([s.metric for s in series]),
            "cluster": dim([cluster] * len(series)),
            "node": dim([s.node for s in series]),
            "gpu": dim([s.gpu for s in series]),
            "attributes": pc.take(attrs, idx),
            "series_id": pc.take(pa.array(np.array(sids, dtype=np.uint64)), idx),
            "ts": pa.array(ts_ms, type=pa.timestamp("ms", tz="UTC")),
            "value": pa.array(np.concatenate([s.values for s in series]).astype(np.float64)),
            "start_ts": pc.take(
                pa.array([s.start_ns // 1_000_000 for s in series], type=pa.timestamp("ms", tz="UTC")), idx
            ),
            "kind": dim([s.kind for s in series]),
        }
    )
    assert table.num_rows == total
    return table
