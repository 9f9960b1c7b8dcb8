"""The five fleetpulse dashboards; each module's ``build()`` returns an SDK dashboard builder.

UIDs and variable names are a contract with the alerting generator (collector/alerting/spec.py
DASHBOARDS): alert annotations link to ``/d/<uid>?var-node=..&var-gpu=..``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from collector.grafana.boards import fabric, gpu, node, overview, pipeline

BOARDS: dict[str, Callable[[], Any]] = {
    "fleetpulse-overview": overview.build,
    "fleetpulse-gpu": gpu.build,
    "fleetpulse-node": node.build,
    "fleetpulse-fabric": fabric.build,
    "fleetpulse-pipeline": pipeline.build,
}
