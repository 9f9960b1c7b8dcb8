"""Every benchmark runs at a tiny size in CI, so none can rot unnoticed."""

from __future__ import annotations

import importlib

import pytest

from bench.common import BenchResult
from bench.run_all import bench_modules


@pytest.mark.parametrize("name", bench_modules())
def test_bench_runs_quick(name: str) -> None:
    module = importlib.import_module(f"bench.{name}")
    result = module.run(quick=True)
    assert isinstance(result, BenchResult)
    assert result.figures, f"{name} reported no figures"
    for figure in result.figures:
        assert figure.value == figure.value, f"{name}: {figure.name} is NaN"
