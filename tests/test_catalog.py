from __future__ import annotations

import json
import re

from agent.catalog import CATALOG, render
from tests.conftest import REPO

UCUM_OK = re.compile(r"^(By|Cel|W|J|1|s|Hz|bit/s|By/s|\{[a-z_]+\})$")


def test_metrics_doc_is_generated_from_catalog() -> None:
    committed = (REPO / "docs" / "METRICS.md").read_text()
    assert committed == render("markdown"), "docs/METRICS.md is stale: run `make docs`"


def test_every_spec_is_well_formed() -> None:
    for spec in CATALOG.values():
        assert UCUM_OK.match(spec.unit), f"{spec.name}: unit {spec.unit!r} is not UCUM as we use it"
        assert spec.description.endswith("."), spec.name
        assert spec.instrument in ("gauge", "counter", "updowncounter")
        assert len(set(spec.attributes)) == len(spec.attributes), spec.name
        assert re.fullmatch(r"[a-z_][a-z0-9_]*", spec.prometheus_name), spec.prometheus_name


def test_prometheus_names_follow_otel_translation() -> None:
    assert CATALOG["hw.gpu.temperature"].prometheus_name == "hw_gpu_temperature_celsius"
    assert CATALOG["hw.gpu.energy"].prometheus_name == "hw_gpu_energy_joules_total"
    assert CATALOG["hw.gpu.utilization"].prometheus_name == "hw_gpu_utilization_ratio"
    assert CATALOG["hw.gpu.ecc.errors"].prometheus_name == "hw_gpu_ecc_errors_total"
    names = [s.prometheus_name for s in CATALOG.values()]
    assert len(names) == len(set(names)), "two metrics translate to one Prometheus name"


def test_json_format_round_trips() -> None:
    rows = json.loads(render("json"))
    assert {r["name"] for r in rows} == set(CATALOG)
    assert all("dcgm" in r and "prometheus_name" in r for r in rows)
