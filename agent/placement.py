"""Placement stream: which pod / job uses which GPU, as low-rate ``placement`` log records.

Never a label on samples (DESIGN §4: pod labels churn series and go stale). Sources, best first:

1. kubelet PodResources v1 ``List`` over its unix socket (``placement.kubelet_socket``), when it
   exists: device ids of ``nvidia.com/gpu*`` resources are GPU (or MIG) UUIDs → pod name, namespace,
   container.
2. Otherwise NVML running processes per GPU → ``/proc/<pid>/cgroup`` → pod UID (and container id),
   and ``SLURM_JOB_ID`` from ``/proc/<pid>/environ`` where readable.

Records go out on change only: ``placement.state=start`` (with ``placement.start``, unix ns) when an
assignment appears, ``end`` (same ``placement.start`` plus ``placement.end``) when it disappears; the
first poll after start reports everything current as ``start``. The collector keys an interval by
its start and fills in the end. The PodResources messages are built from protobuf descriptors here
(a few fields of k8s.io/kubelet/pkg/apis/podresources/v1/api.proto), so no generated code is vendored.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from pathlib import Path

from agent.snapshot import Severity, SnapshotBuilder

log = logging.getLogger(__name__)

EVENT_NAME = "placement"
POD_UID = re.compile(r"pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})")
CONTAINER_ID = re.compile(r"(?:cri-containerd-|docker-|crio-)?([0-9a-f]{64})(?:\.scope)?$")
LIST_METHOD = "/v1.PodResourcesLister/List"

Assignment = tuple[tuple[str, str], ...]
# GPU UUID -> (gpu index, pids of processes running on it)
GpuProcesses = Callable[[], dict[str, tuple[int, list[int]]]]


def _podresources_messages():
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    fdp = descriptor_pb2.FileDescriptorProto(name="fleetpulse_podresources_v1.proto", package="v1", syntax="proto3")
    T = descriptor_pb2.FieldDescriptorProto

    def message(name: str, *fields: tuple[str, int, int, bool, str]) -> None:
        m = fdp.message_type.add(name=name)
        for fname, number, ftype, repeated, type_name in fields:
            f = m.field.add(name=fname, number=number, type=ftype)
            f.label = T.LABEL_REPEATED if repeated else T.LABEL_OPTIONAL
            if type_name:
                f.type_name = type_name

    message("ListPodResourcesRequest")
    message(
        "ContainerDevices",
        ("resource_name", 1, T.TYPE_STRING, False, ""),
        ("device_ids", 2, T.TYPE_STRING, True, ""),
    )
    message(
        "ContainerResources",
        ("name", 1, T.TYPE_STRING, False, ""),
        ("devices", 2, T.TYPE_MESSAGE, True, ".v1.ContainerDevices"),
    )
    message(
        "PodResources",
        ("name", 1, T.TYPE_STRING, False, ""),
        ("namespace", 2, T.TYPE_STRING, False, ""),
        ("containers", 3, T.TYPE_MESSAGE, True, ".v1.ContainerResources"),
    )
    message("ListPodResourcesResponse", ("pod_resources", 1, T.TYPE_MESSAGE, True, ".v1.PodResources"))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"v1.{name}"))
        for name in ("ListPodResourcesRequest", "ListPodResourcesResponse", "PodResources")
    }


def kubelet_assignments(socket_path: str, timeout_s: float = 2.0) -> list[dict[str, str]]:
    """GPU → pod from the kubelet PodResources v1 List API."""
    import grpc

    messages = _podresources_messages()
    with grpc.insecure_channel(f"unix://{socket_path}") as channel:
        call = channel.unary_unary(
            LIST_METHOD,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=messages["ListPodResourcesResponse"].FromString,
        )
        response = call(messages["ListPodResourcesRequest"](), timeout=timeout_s)
    out = []
    for pod in response.pod_resources:
        for container in pod.containers:
            for devices in container.devices:
                if not devices.resource_name.startswith("nvidia.com/"):
                    continue
                for device_id in devices.device_ids:
                    out.append(
                        {
                            "hw.id": device_id,
                            "k8s.pod.name": pod.name,
                            "k8s.namespace.name": pod.namespace,
                            "k8s.container.name": container.name,
                            "placement.source": "kubelet",
                        }
                    )
    return out


def process_owner(procfs: Path, pid: int) -> dict[str, str]:
    """Pod UID / container id from /proc/<pid>/cgroup, SLURM job id from its environ."""
    owner: dict[str, str] = {}
    try:
        cgroup = (procfs / str(pid) / "cgroup").read_text()
    except OSError:
        cgroup = ""
    for line in cgroup.splitlines():
        path = line.rpartition(":")[2]
        match = POD_UID.search(path)
        if match:
            owner["k8s.pod.uid"] = match.group(1).replace("_", "-")
            tail = CONTAINER_ID.search(path.rstrip("/").rpartition("/")[2])
            if tail:
                owner["container.id"] = tail.group(1)
            break
        if "slurm" in path and "job_" in path:
            job = re.search(r"job_(\d+)", path)
            if job:
                owner["slurm.job.id"] = job.group(1)
    try:
        environ = (procfs / str(pid) / "environ").read_bytes()
    except OSError:
        environ = b""
    for item in environ.split(b"\0"):
        if item.startswith(b"SLURM_JOB_ID="):
            owner["slurm.job.id"] = item.partition(b"=")[2].decode(errors="replace")[:32]
    return owner


class PlacementTracker:
    def __init__(
        self,
        procfs: str,
        kubelet_socket: str,
        gpu_processes: GpuProcesses | None,
    ) -> None:
        self.procfs = Path(procfs)
        self.kubelet_socket = kubelet_socket
        self.gpu_processes = gpu_processes
        self.current: dict[Assignment, int] = {}  # assignment -> first seen (unix ns)
        self.errors = 0

    def read(self) -> list[dict[str, str]]:
        if self.kubelet_socket and os.path.exists(self.kubelet_socket):
            try:
                return kubelet_assignments(self.kubelet_socket)
            except Exception as exc:
                self.errors += 1
                log.warning("kubelet PodResources List failed (%s); falling back to /proc", exc)
        if self.gpu_processes is None:
            return []
        out = []
        for uuid, (index, pids) in self.gpu_processes().items():
            for pid in pids:
                owner = process_owner(self.procfs, pid)
                if owner:
                    out.append({"hw.id": uuid, "gpu.index": str(index), **owner, "placement.source": "procfs"})
        return out

    def poll(self, builder: SnapshotBuilder) -> int:
        """Add start/end placement records for what changed; returns how many were added."""
        now = {tuple(sorted(a.items())) for a in self.read()}
        # One pod with several processes on one GPU is one assignment.
        now = {tuple((k, v) for k, v in a if k != "process.pid") for a in now}
        added = 0
        stamp = str(builder.time_unix_nano)
        ended = [a for a in self.current if a not in now]
        started = [a for a in now if a not in self.current]
        for state, assignments in (("end", ended), ("start", started)):
            for a in sorted(assignments):
                attrs = dict(a)
                who = attrs.get("k8s.pod.name") or attrs.get("k8s.pod.uid") or attrs.get("slurm.job.id") or "?"
                # The collector keys a placement interval by its start and fills in the end later.
                if state == "start":
                    self.current[a] = builder.time_unix_nano
                    times = {"placement.start": stamp}
                else:
                    times = {"placement.start": str(self.current.pop(a)), "placement.end": stamp}
                builder.event(
                    EVENT_NAME,
                    Severity.INFO,
                    f"GPU {attrs.get('hw.id', '?')} {'now used by' if state == 'start' else 'released by'} {who}",
                    {**attrs, "placement.state": state, **times},
                )
                added += 1
        return added


def nvml_gpu_processes(nvml_source: object) -> GpuProcesses | None:
    """GPU → running process pids from the NVML source's ``gpu_processes()``.

    The source asks each GPU on its own watchdog worker (a hung driver call is abandoned, not waited
    on). None when the source has no GPUs to ask.
    """
    gpu_processes = getattr(nvml_source, "gpu_processes", None)
    if gpu_processes is None or not getattr(nvml_source, "gpus", None):
        return None
    return lambda: {uuid: (procs.index, procs.pids) for uuid, procs in gpu_processes().items()}
