"""The ingest hot path's shortcuts give the same rows as the plain definitions.

- series ids built from per-attribute-set parts (collector/store/rows.py ``series_id_parts``) equal
  :func:`series_id` of the row's own columns, for every metric sharing an attribute set;
- an attribute set over the limits is rejected for every metric that uses it, not only the first.
"""

from __future__ import annotations

import time

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from collector.convert import Converter, decode_metrics
from collector.limits import Limits
from collector.store.rows import series_id, series_id_of, series_id_parts

NOW = time.time_ns() // 10**9 * 10**9


def _request(node: str, metrics: list[str], gpus: list[dict[str, str]], histogram: bool = False) -> bytes:
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    for key, value in (("host.name", node), ("k8s.cluster.name", "c1"), ("rack", "r7")):
        kv = rm.resource.attributes.add()
        kv.key, kv.value.string_value = key, value
    sm = rm.scope_metrics.add()
    for i, name in enumerate(metrics):
        metric = sm.metrics.add()
        metric.name = name
        for g, attrs in enumerate(gpus):
            if histogram:
                dp = metric.histogram.data_points.add()
                dp.count, dp.sum = 3, 1.5
                dp.explicit_bounds.extend([1.0])
                dp.bucket_counts.extend([1, 2])
            elif i % 2:
                dp = metric.sum.data_points.add()
                metric.sum.is_monotonic = True
                dp.as_int = 10 * i + g
            else:
                dp = metric.gauge.data_points.add()
                dp.as_double = i + g / 10
            dp.time_unix_nano = NOW
            for key, value in attrs.items():
                kv = dp.attributes.add()
                kv.key, kv.value.string_value = key, value
    return req.SerializeToString()


def test_series_id_parts_match_series_id() -> None:
    attrs = {"z": "1", "a": "x\x1fy", "gpu.index": "3", "": ""}
    prefix, suffix = series_id_parts("tenant-a", "c1", "node-9", "GPU-1", attrs)
    for metric in ("hw.gpu.power", "", "m:with:colons", "12:34"):
        assert series_id_of(prefix, metric, suffix) == series_id("tenant-a", metric, "c1", "node-9", "GPU-1", attrs)
    # the parts are not interchangeable between tenants or nodes
    other = series_id_parts("tenant-b", "c1", "node-9", "GPU-1", attrs)
    assert series_id_of(*other[:1], "m", other[1]) != series_id_of(prefix, "m", suffix)


def test_shared_attribute_sets_give_each_series_its_own_id() -> None:
    gpus = [{"hw.id": f"GPU-{g}", "gpu.index": str(g), "hw.model": "H100"} for g in range(4)]
    metrics = [f"hw.gpu.m{m}" for m in range(6)]
    converter = Converter(Limits(max_past_s=3600))
    seen: set[int] = set()
    for node in ("node-1", "node-2"):
        for tick in range(2):  # the second tick hits the series cache
            out = converter.metrics("t", decode_metrics(_request(node, metrics, gpus)), NOW + tick)
            cols = out.samples.to_columns()
            assert len(cols.ts) == len(metrics) * len(gpus)
            for i in range(len(cols.ts)):
                assert cols.node[i] == node and cols.cluster[i] == "c1"
                assert cols.attributes[i] == {"rack": "r7", "gpu.index": cols.gpu[i][-1], "hw.model": "H100"}
                assert cols.series_id[i] == series_id(
                    "t", cols.metric[i], "c1", node, cols.gpu[i], cols.attributes[i]
                ), f"row {i}: {cols.metric[i]} {cols.gpu[i]}"
            seen.update(int(s) for s in cols.series_id)
    assert len(seen) == 2 * len(metrics) * len(gpus)


def test_histogram_rows_share_attribute_sets_and_keep_distinct_ids() -> None:
    gpus = [{"hw.id": "GPU-0", "gpu.index": "0"}]
    out = Converter(Limits(max_past_s=3600)).metrics(
        "t", decode_metrics(_request("n", ["hw.gpu.lat"], gpus, True)), NOW
    )
    cols = out.samples.to_columns()
    rows = {(cols.metric[i], cols.attributes[i].get("le", "")): int(cols.series_id[i]) for i in range(len(cols.ts))}
    assert set(rows) == {
        ("hw.gpu.lat_count", ""),
        ("hw.gpu.lat_sum", ""),
        ("hw.gpu.lat_bucket", "1.0"),
        ("hw.gpu.lat_bucket", "+Inf"),
    }
    for (metric, le), sid in rows.items():
        attrs = {"rack": "r7", "gpu.index": "0", **({"le": le} if le else {})}
        assert sid == series_id("t", metric, "c1", "n", "GPU-0", attrs)
    assert len(set(rows.values())) == 4


def test_an_attribute_set_over_the_limit_is_rejected_for_every_metric() -> None:
    gpus = [{"hw.id": "GPU-0", "long": "x" * 40}, {"hw.id": "GPU-1", "short": "y"}]
    metrics = [f"hw.gpu.m{i}" for i in range(5)]
    converter = Converter(Limits(max_past_s=3600, max_attribute_length=32))
    for _ in range(2):
        out = converter.metrics("t", decode_metrics(_request("n", metrics, gpus)), NOW)
        assert out.rejected == {"attribute_length": len(metrics)}
        assert out.accepted == len(metrics)
        assert set(out.samples.to_columns().gpu) == {"GPU-1"}


def _reference_budget(budget: int, window: float, batches: list[tuple[float, list[tuple[str, int]]]]) -> list[dict]:
    """The budget's rule written plainly: per batch, every series in it is seen; only if the new ones do
    not fit are series idle past the window let go; new ones are admitted in id order while room remains."""
    active: dict[str, dict[int, float]] = {}
    out = []
    for now, rows in batches:
        over: dict[str, set[int]] = {}
        for tenant in dict.fromkeys(t for t, _ in rows):
            seen = active.setdefault(tenant, {})
            ids = sorted({sid for t, sid in rows if t == tenant})
            new = [sid for sid in ids if sid not in seen]
            for sid in ids:
                if sid in seen:
                    seen[sid] = now
            if len(seen) + len(new) > budget:
                for sid in [s for s, t in seen.items() if t < now - window]:
                    del seen[sid]
            room = max(0, budget - len(seen))
            for sid in new[:room]:
                seen[sid] = now
            over[tenant] = set(new[room:])
        out.append({t: sorted(s) for t, s in over.items() if s})
    return out


def test_series_budget_matches_the_plain_rule() -> None:
    import random

    import numpy as np

    from collector.convert import SampleArrays
    from collector.limits import SeriesBudget

    rng = random.Random(7)
    batches = []
    now = 0.0
    for _ in range(40):
        now += rng.choice([1.0, 5.0, 30.0])
        # series ids hash the tenant in, so two tenants never share one
        rows = [
            (t, rng.randrange(1, 60) + (1000 if t == "b" else 0)) for t in rng.choices("ab", k=rng.randrange(1, 80))
        ]
        batches.append((now, rows))
    expected = _reference_budget(12, 20.0, batches)
    assert sum(1 for over in expected if over) >= 5 and sum(1 for over in expected if not over) >= 5
    clock = [0.0]
    budget = SeriesBudget(12, window_s=20.0, clock=lambda: clock[0])
    for (now, rows), want in zip(batches, expected, strict=True):
        clock[0] = now
        n = len(rows)
        tenants = np.array([t for t, _ in rows], dtype=object)
        ids = np.array([sid for _, sid in rows], dtype=np.uint64)
        columns = {
            "tenant": tenants,
            "metric": np.array(["m"] * n, dtype=object),
            "cluster": np.array(["c"] * n, dtype=object),
            "node": np.array([f"n{sid}" for _, sid in rows], dtype=object),
            "gpu": np.array(["g"] * n, dtype=object),
            "attributes": np.array([{"k": str(sid)} for _, sid in rows], dtype=object),
            "series_id": ids.copy(),
            "kind": np.array(["gauge"] * n, dtype=object),
        }
        zeros = np.zeros(n, dtype=np.int64)
        samples = SampleArrays(zeros, zeros.astype(np.float64), zeros, columns=columns)
        out, folded = budget.apply(samples)
        over_rows = [i for i, (t, sid) in enumerate(rows) if sid in want.get(t, ())]
        assert folded == {t: sum(1 for i in over_rows if rows[i][0] == t) for t in want}
        for i in over_rows:
            assert out.node[i] == "" and out.gpu[i] == "" and out.attributes[i] == {"otel.metric.overflow": "true"}
            assert out.series_id[i] != ids[i]
        kept = [i for i in range(n) if i not in set(over_rows)]
        assert all(out.series_id[i] == ids[i] and out.node[i] == f"n{ids[i]}" for i in kept)
        for tenant in "ab":
            assert budget.active(tenant) <= 12


def test_series_budget_on_registry_rows_matches_column_rows() -> None:
    gpus = [{"hw.id": f"GPU-{g}", "gpu.index": str(g)} for g in range(3)]
    converter = Converter(Limits(max_past_s=3600))
    import numpy as np

    from collector.convert import SampleArrays
    from collector.limits import SeriesBudget

    parts = [
        converter.metrics(tenant, decode_metrics(_request(node, ["a", "b"], gpus)), NOW).samples
        for tenant, node in (("t1", "n1"), ("t2", "n1"), ("t1", "n2"), ("t1", "n1"))
    ]
    compact = SampleArrays.concat(parts)
    assert not compact.dirty
    assert [(t, len(ids)) for t, ids in compact.distinct_series()] == [("t1", 12), ("t2", 6)]
    t1_ids = compact.series_id[compact.tenant == "t1"]
    over = set(np.unique(t1_ids)[8:].tolist())  # admitted in id order: the 4 highest ids overflow
    over_rows = sum(1 for sid in t1_ids.tolist() if sid in over)
    out, folded = SeriesBudget(8).apply(compact)
    assert folded == {"t1": over_rows}
    assert sum(1 for a in out.attributes if a == {"otel.metric.overflow": "true"}) == over_rows
