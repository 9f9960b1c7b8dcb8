"""Which Xid codes page and which open a ticket.

The codes and their severities come from the agent's Xid catalog (``agent/xid.py``), so the alert
follows the same table the agent stamps on its events. Application-level codes (13, 31, 43) and
follow-ups (45) never alert: they are the job's fault, not the GPU's.
"""

from __future__ import annotations

from agent.xid import XID_CATALOG

# Xid catalog severity → alert severity. 'app' and 'info' codes are the job's business: no alert.
ALERT_SEVERITY: dict[str, str | None] = {
    "fatal": "page",
    "critical": "page",
    "warning": "ticket",
    "unknown": "ticket",
    "app": None,
    "info": None,
}


def xid_severities() -> dict[int, str]:
    """Alerting Xid codes → 'page' or 'ticket'."""
    out: dict[int, str] = {}
    for code, info in XID_CATALOG.items():
        severity = ALERT_SEVERITY[info.severity]
        if severity:
            out[code] = severity
    return out


def codes_by_severity() -> dict[str, tuple[int, ...]]:
    out: dict[str, list[int]] = {}
    for code, severity in sorted(xid_severities().items()):
        out.setdefault(severity, []).append(code)
    return {sev: tuple(codes) for sev, codes in sorted(out.items())}


def severity_variants(severity: str, match: dict[str, tuple[str, ...]]) -> list[tuple[str, dict[str, tuple[str, ...]]]]:
    """(severity, attribute match) per rule an alert becomes: one, or for ``severity: xid`` one per
    alert severity with the Xid codes that have it added to the match."""
    if severity != "xid":
        return [(severity, match)]
    return [(sev, {**match, "hw.gpu.xid": tuple(str(c) for c in codes)}) for sev, codes in codes_by_severity().items()]
