"""The Xid catalog: what an Xid code means, how bad it is, and what an operator should do.

Codes and actions follow DESIGN §5 (NVIDIA's Xid catalog as GPUd and operators classify it). The NVML
source attaches ``xid.severity`` and ``xid.action`` to every ``gpu.xid`` event from this table;
reports and alert rules import it so the three never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from agent.snapshot import Severity

XidSeverity = Literal["app", "info", "warning", "critical", "fatal", "unknown"]


@dataclass(frozen=True, slots=True)
class XidInfo:
    code: int
    meaning: str
    severity: XidSeverity
    action: str

    @property
    def log_severity(self) -> Severity:
        """OTLP log severity for the event carrying this Xid."""
        return _LOG_SEVERITY[self.severity]


_LOG_SEVERITY: dict[str, Severity] = {
    "info": Severity.INFO,
    "app": Severity.WARN,
    "warning": Severity.WARN,
    "unknown": Severity.WARN,
    "critical": Severity.ERROR,
    "fatal": Severity.FATAL,
}

_CHECK_APP = "check the application"
_RESET = "reset GPU"

XID_CATALOG: dict[int, XidInfo] = {
    info.code: info
    for info in (
        XidInfo(13, "graphics engine exception (application fault)", "app", _CHECK_APP),
        XidInfo(31, "GPU memory page fault (MMU fault)", "app", _CHECK_APP),
        XidInfo(43, "GPU stopped processing: channel reset", "app", _CHECK_APP),
        XidInfo(45, "preemptive cleanup after another error", "info", "follow the other Xid"),
        XidInfo(48, "double-bit ECC error", "critical", "reset GPU; inspect hardware if repeated"),
        XidInfo(61, "internal micro-controller breakpoint", "critical", _RESET),
        XidInfo(62, "internal micro-controller halt", "critical", _RESET),
        XidInfo(63, "row remap / page retirement recorded", "warning", "reset GPU to apply the remap"),
        XidInfo(64, "row remap / page retirement failed", "critical", "inspect hardware: the GPU needs service"),
        XidInfo(74, "NVLink error", "critical", "reset GPU; inspect links if repeated"),
        XidInfo(79, "GPU has fallen off the bus", "fatal", "reboot node; inspect hardware"),
        XidInfo(92, "excessive single-bit ECC error rate", "warning", "watch; inspect hardware if persistent"),
        XidInfo(94, "contained ECC error", "warning", "restart the application"),
        XidInfo(95, "uncontained ECC error", "critical", _RESET),
        XidInfo(109, "context-switch timeout", "critical", _RESET),
        XidInfo(119, "GSP RPC timeout", "critical", _RESET),
        XidInfo(120, "GSP error", "critical", _RESET),
        XidInfo(140, "unrecoverable ECC error escape", "critical", "reset GPU; inspect hardware"),
    )
}


def lookup(code: int) -> XidInfo:
    """The catalog entry for ``code``; codes not in the table get an explicit 'unknown' entry."""
    info = XID_CATALOG.get(int(code))
    if info is not None:
        return info
    return XidInfo(int(code), "Xid not in fleetpulse's catalog", "unknown", "look the code up in NVIDIA's Xid catalog")
