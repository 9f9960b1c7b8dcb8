"""The storage bench's dataset follows the agent: NVLink byte totals per GPU (fast), per link (slow)."""

from __future__ import annotations

from collections import Counter

import numpy as np

from bench.dataset import FAST_S, GPUS_PER_NODE, NVLINKS, SLOW_S, generate


def test_nvlink_totals_fast_links_slow_and_they_agree() -> None:
    data = generate(nodes=1, hours=0.5, seed=3, end_ns=1_700_000_040 * 10**9)
    t = data.samples.filter(
        np.isin(
            data.samples.column("metric").to_numpy(zero_copy_only=False), ["hw.gpu.nvlink.io", "hw.gpu.nvlink.link.io"]
        )
    ).to_pylist()
    series: dict[tuple, dict[int, float]] = {}
    for r in t:
        key = (r["metric"], r["gpu"], tuple(sorted(r["attributes"])))
        series.setdefault(key, {})[int(r["ts"].timestamp())] = r["value"]
    per_metric = Counter(k[0] for k in series)
    assert per_metric == {"hw.gpu.nvlink.io": GPUS_PER_NODE * 2, "hw.gpu.nvlink.link.io": GPUS_PER_NODE * NVLINKS * 2}
    for (metric, gpu, attrs), points in series.items():
        attrs = dict(attrs)
        step = FAST_S if metric == "hw.gpu.nvlink.io" else SLOW_S
        assert len(points) == 1800 // step
        assert all(ts % step == 0 for ts in points)
        assert all(v % 1024 == 0 for v in points.values())  # NVML's KiB
        if metric == "hw.gpu.nvlink.io":
            assert "hw.nvlink.link" not in attrs
            links = [
                p
                for (m, g, a), p in series.items()
                if m == "hw.gpu.nvlink.link.io"
                and g == gpu
                and dict(a)["network.io.direction"] == attrs["network.io.direction"]
            ]
            for ts in links[0]:
                assert points[ts] == sum(p[ts] for p in links)
