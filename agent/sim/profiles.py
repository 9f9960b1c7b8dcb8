"""GPU profiles for the simulator: what a model has, what it lacks, and its operating envelope.

What a profile lacks is answered the way real NVML answers it: the function raises
``NVMLError_NotSupported`` (``unsupported_functions``) or a field value carries
``NVML_ERROR_NOT_SUPPORTED`` in its own ``nvmlReturn`` (``unsupported_fields``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

# Field ids (pynvml.NVML_FI_*), spelled as numbers so this module does not need pynvml.
FI_RETIRED = frozenset({29, 30, 31})  # NVML_FI_DEV_RETIRED_SBE/DBE/PENDING
FI_REMAPPED = frozenset({142, 143, 144, 145})
FI_THROTTLE_TIME = frozenset({269, 270, 271})
FI_RECOVERY_ACTION = frozenset({230})
FI_NVLINK = frozenset({91, 138, 139, 165})

GPM_FUNCTIONS = frozenset({"nvmlGpmSampleGet", "nvmlGpmMetricsGet", "nvmlGpmSampleAlloc"})
NVLINK_FUNCTIONS = frozenset({"nvmlDeviceGetNvLinkState", "nvmlDeviceGetNvLinkErrorCounter"})


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    model_name: str  # what nvmlDeviceGetName returns
    default_gpus: int
    memory_bytes: int
    tdp_w: float  # enforced power limit
    idle_w: float
    max_sm_mhz: int
    idle_sm_mhz: int
    max_mem_mhz: int
    pcie_gen: int
    pcie_width: int
    nvlinks: int
    row_remapping: bool  # Ampere and newer; older GPUs retire pages instead
    gpm: bool  # NVML GPM (Hopper and newer)
    fans: int = 0  # data-center cards are passively cooled
    mig_capable: bool = False
    mig_instances: int = 0  # > 0: MIG mode on with this many GPU instances
    ambient_c: float = 30.0
    thermal_c_per_w: float = 0.06  # die temperature rise per watt at steady state
    thermal_tau_s: float = 45.0
    slowdown_c: float = 87.0  # SW thermal slowdown threshold
    pcie_busy_bytes_s: float = 4e9
    nvlink_busy_bytes_s: float = 20e9  # per link and direction
    driver_version: str = "550.54.15"
    vbios_version: str = "96.00.74.00.01"
    pci_buses: tuple[int, ...] = (0x18, 0x2A, 0x3A, 0x5D, 0x9A, 0xAB, 0xBA, 0xDB)
    unsupported_functions: frozenset[str] = frozenset()
    unsupported_fields: frozenset[int] = frozenset()
    extra: dict[str, str] = field(default_factory=dict)

    def replace(self, **changes: object) -> Profile:
        """A variant of this profile (tests use it for fans, MIG, ...)."""
        return dataclasses.replace(self, **changes)


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            name="h100-sxm",
            model_name="NVIDIA H100 80GB HBM3",
            default_gpus=8,
            memory_bytes=80 * 1024**3,
            tdp_w=700.0,
            idle_w=70.0,
            max_sm_mhz=1980,
            idle_sm_mhz=345,
            max_mem_mhz=2619,
            pcie_gen=5,
            pcie_width=16,
            nvlinks=18,
            row_remapping=True,
            gpm=True,
            mig_capable=True,
            thermal_c_per_w=0.06,
            unsupported_functions=frozenset({"nvmlDeviceGetNumFans", "nvmlDeviceGetFanSpeed_v2"}),
            unsupported_fields=FI_RETIRED,
        ),
        Profile(
            name="a100-pcie",
            model_name="NVIDIA A100-PCIE-40GB",
            default_gpus=4,
            memory_bytes=40 * 1024**3,
            tdp_w=250.0,
            idle_w=35.0,
            max_sm_mhz=1410,
            idle_sm_mhz=210,
            max_mem_mhz=1215,
            pcie_gen=4,
            pcie_width=16,
            nvlinks=0,
            row_remapping=True,
            gpm=False,
            mig_capable=True,
            thermal_c_per_w=0.17,
            vbios_version="92.00.25.00.08",
            pci_buses=(0x17, 0x65, 0xCA, 0xE3, 0x31, 0x4B, 0xB1, 0xB2),
            unsupported_functions=GPM_FUNCTIONS | NVLINK_FUNCTIONS,
            unsupported_fields=FI_RETIRED | FI_RECOVERY_ACTION | FI_NVLINK,
        ),
        Profile(
            name="t4",
            model_name="Tesla T4",
            default_gpus=4,
            memory_bytes=15 * 1024**3 + 360 * 1024**2,
            tdp_w=70.0,
            idle_w=9.0,
            max_sm_mhz=1590,
            idle_sm_mhz=300,
            max_mem_mhz=5001,
            pcie_gen=3,
            pcie_width=16,
            nvlinks=0,
            row_remapping=False,
            gpm=False,
            thermal_c_per_w=0.55,
            slowdown_c=85.0,
            vbios_version="90.04.96.00.9F",
            pci_buses=(0x3B, 0x5E, 0x86, 0xAF, 0x18, 0x19, 0xD8, 0xD9),
            unsupported_functions=GPM_FUNCTIONS
            | NVLINK_FUNCTIONS
            | frozenset({"nvmlDeviceGetRemappedRows", "nvmlGpmQueryDeviceSupport", "nvmlDeviceGetMigMode"}),
            unsupported_fields=FI_REMAPPED | FI_THROTTLE_TIME | FI_RECOVERY_ACTION | FI_NVLINK,
        ),
    )
}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown simulator profile {name!r}: expected one of {', '.join(PROFILES)}") from None
