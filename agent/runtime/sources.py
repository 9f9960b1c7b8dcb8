"""Build the configured sources. Each source module is imported only when enabled."""

from __future__ import annotations

import logging
import os
import socket
import urllib.parse

from agent.config import AgentConfig
from agent.sources.base import Source

log = logging.getLogger(__name__)


def env_resource_attributes() -> dict[str, str]:
    """``OTEL_RESOURCE_ATTRIBUTES`` (``k=v,k2=v2``, values percent-encoded, as the OTel spec says).

    In a DaemonSet the pod's hostname is the pod name; the Helm chart passes the node name from the
    downward API this way (``k8s.node.name=$(K8S_NODE_NAME)``), since a shared ConfigMap cannot.
    """
    attributes = {}
    for item in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            attributes[key.strip()] = urllib.parse.unquote(value.strip())
    return attributes


def resource_attributes(config: AgentConfig) -> dict[str, str]:
    resource = {"service.name": "fleetpulse-agent", "host.name": socket.gethostname()}
    resource.update(env_resource_attributes())
    resource.update(config.resource)
    resource.setdefault("k8s.node.name", resource["host.name"])
    return resource


def build_sources(config: AgentConfig) -> list[Source]:
    sources: list[Source] = []
    nvml = None
    if "nvml" in config.sources:
        from agent.sources.nvml import NvmlSource

        nvml = NvmlSource.create(config)
        sources.append(nvml)
    if "host" in config.sources:
        from agent.sources.host import HostSource

        sources.append(HostSource(config))
    if "fabric" in config.sources:
        from agent.sources.fabric import FabricSource

        sources.append(FabricSource(config))
    if "errors" in config.sources:
        from agent.sources.errors import ErrorsSource

        # Kernel-log Xid lines name a PCI address; NVML (when up) maps it to the GPU UUID.
        sources.append(ErrorsSource(config, gpu_by_pci=nvml.gpu_by_pci if nvml else None))
    unknown = set(config.sources) - {"nvml", "host", "fabric", "errors"}
    if unknown:
        raise ValueError(f"unknown source(s) {sorted(unknown)}: expected nvml, host, fabric, errors")
    return sources
