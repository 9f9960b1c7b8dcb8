"""Fleet history simulator: a whole fleet's telemetry, with known faults, through the collector's real write path.

``build_plan(FleetSpec(...), load_scenario(FILE))`` decides the fleet and its faults (and the manifest
of what was injected); ``simulate(plan, OtlpHttpSender(url))`` generates and posts the history.
"""

from collector.fleet_sim.plan import FleetPlan, FleetSpec, build_plan
from collector.fleet_sim.run import Summary, simulate
from collector.fleet_sim.scenario import DEFAULT_SCENARIO, ScenarioError, load_scenario, parse_duration
from collector.fleet_sim.send import OtlpHttpSender, SendError

__all__ = [
    "DEFAULT_SCENARIO",
    "FleetPlan",
    "FleetSpec",
    "OtlpHttpSender",
    "ScenarioError",
    "SendError",
    "Summary",
    "build_plan",
    "load_scenario",
    "parse_duration",
    "simulate",
]
