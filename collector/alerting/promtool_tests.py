"""promtool unit tests for the burn-rate edges, generated for every SLO x burn-rate pair.

The alerting rules are tested on their own (rule_files lists only slo-alerts.yaml), with the
recorded error ratios given as input series, so each window can sit exactly 1 % below or above its
threshold. For every pair: both windows above → fires with the pair's labels; long above but short
below, short above but long below, and both just below → silent. The recording rules that produce
those ratios have their own hand-written tests (alerts/tests/slo_recording_test.yaml).
"""

from __future__ import annotations

from typing import Any

from collector.alerting.promql import SLI_RECORD, slo_alert_groups
from collector.alerting.spec import Spec

ABOVE, BELOW = 1.01, 0.99


def _series(slo: str, window: str, value: float) -> dict[str, str]:
    return {"series": f'{SLI_RECORD.format(window=window)}{{slo="{slo}"}}', "values": f"{value!r}+0x10"}


def _expected_annotations(rule: dict[str, Any]) -> dict[str, str]:
    """The rule's annotations as Prometheus renders them when no GPU/node is in a bad state."""
    out = dict(rule["annotations"])
    summary = out["summary"]
    start = summary.index("{{ with query")
    out["summary"] = summary[:start] + "none found"
    return out


def burn_tests(spec: Spec) -> dict[str, Any]:
    rules = [r for g in slo_alert_groups(spec) for r in g["rules"]]
    tests: list[dict[str, Any]] = []
    i = 0
    for slo in spec.slos:
        if "prometheus" not in slo.backends:
            continue
        for br in spec.burn_rates:
            rule = rules[i]
            i += 1
            threshold = br.factor * slo.budget
            cases = [
                ("both windows just above", ABOVE, ABOVE, True),
                ("long above, short just below", ABOVE, BELOW, False),
                ("short above, long just below", BELOW, ABOVE, False),
                ("both windows just below", BELOW, BELOW, False),
            ]
            for text, long_k, short_k, fires in cases:
                exp = []
                if fires:
                    exp = [{"exp_labels": rule["labels"], "exp_annotations": _expected_annotations(rule)}]
                tests.append(
                    {
                        "name": f"{slo.name} {br.factor:g}x {br.long}/{br.short}: {text}",
                        "interval": "1m",
                        "input_series": [
                            _series(slo.name, str(br.long), round(threshold * long_k, 12)),
                            _series(slo.name, str(br.short), round(threshold * short_k, 12)),
                        ],
                        "alert_rule_test": [{"eval_time": "5m", "alertname": slo.alert, "exp_alerts": exp}],
                    }
                )
    return {
        "rule_files": ["../generated/prometheus/slo-alerts.yaml"],
        "evaluation_interval": "1m",
        "tests": tests,
    }
