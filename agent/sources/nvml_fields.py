"""NVML field ids the source batches through nvmlDeviceGetFieldValues, and how to read them."""

from __future__ import annotations

import pynvml as N

# Cumulative throttle (clock-event) time in ns: field id -> hw.gpu.throttle.reason (DESIGN §5).
THROTTLE_TIME_FIELDS: dict[int, str] = {
    N.NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_THERM_SLOWDOWN: "sw_thermal_slowdown",  # 269
    N.NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_THERM_SLOWDOWN: "hw_thermal_slowdown",  # 270
    N.NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_POWER_BRAKE_SLOWDOWN: "hw_power_brake_slowdown",  # 271
    N.NVML_FI_DEV_PERF_POLICY_POWER: "sw_power_cap",  # 74
    N.NVML_FI_DEV_PERF_POLICY_SYNC_BOOST: "sync_boost",  # 76
    N.NVML_FI_DEV_PERF_POLICY_BOARD_LIMIT: "board_limit",  # 77
    N.NVML_FI_DEV_PERF_POLICY_RELIABILITY: "reliability",  # 79
}

MEMORY_TEMP = N.NVML_FI_DEV_MEMORY_TEMP
ENERGY = N.NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION
PCIE_REPLAY = N.NVML_FI_DEV_PCIE_REPLAY_COUNTER
PCIE_TX = N.NVML_FI_DEV_PCIE_COUNT_TX_BYTES
PCIE_RX = N.NVML_FI_DEV_PCIE_COUNT_RX_BYTES
NVLINK_TX = N.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX  # KiB, per link (scopeId)
NVLINK_RX = N.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX
NVLINK_LINK_COUNT = N.NVML_FI_DEV_NVLINK_LINK_COUNT
RECOVERY_ACTION = N.NVML_FI_DEV_GET_GPU_RECOVERY_ACTION

# ECC totals: field id -> (hw.gpu.ecc.type, hw.gpu.ecc.scope).
ECC_FIELDS: dict[int, tuple[str, str]] = {
    N.NVML_FI_DEV_ECC_SBE_VOL_TOTAL: ("corrected", "volatile"),
    N.NVML_FI_DEV_ECC_DBE_VOL_TOTAL: ("uncorrected", "volatile"),
    N.NVML_FI_DEV_ECC_SBE_AGG_TOTAL: ("corrected", "aggregate"),
    N.NVML_FI_DEV_ECC_DBE_AGG_TOTAL: ("uncorrected", "aggregate"),
}
RETIRED_SBE = N.NVML_FI_DEV_RETIRED_SBE
RETIRED_DBE = N.NVML_FI_DEV_RETIRED_DBE
RETIRED_PENDING = N.NVML_FI_DEV_RETIRED_PENDING

FAST_FIELDS: tuple[int, ...] = (MEMORY_TEMP, ENERGY, PCIE_REPLAY, PCIE_TX, PCIE_RX, *THROTTLE_TIME_FIELDS)
SLOW_FIELDS: tuple[int, ...] = (*ECC_FIELDS, RETIRED_SBE, RETIRED_DBE, RETIRED_PENDING, RECOVERY_ACTION)

_MEMBER = {
    N.NVML_VALUE_TYPE_DOUBLE: "dVal",
    N.NVML_VALUE_TYPE_UNSIGNED_INT: "uiVal",
    N.NVML_VALUE_TYPE_UNSIGNED_LONG: "ulVal",
    N.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG: "ullVal",
    N.NVML_VALUE_TYPE_SIGNED_LONG_LONG: "sllVal",
    N.NVML_VALUE_TYPE_SIGNED_INT: "siVal",
    N.NVML_VALUE_TYPE_UNSIGNED_SHORT: "usVal",
}


def field_key(field_id: int) -> str:
    """How an unsupported field shows up in ``fleetpulse.agent.nvml.unsupported{nvml.function}``."""
    return f"nvmlDeviceGetFieldValues[{field_id}]"


def decode(value: N.c_nvmlFieldValue_t) -> float | None:
    """The number in one field value, or None for an unknown value type."""
    member = _MEMBER.get(value.valueType)
    return None if member is None else getattr(value.value, member)
