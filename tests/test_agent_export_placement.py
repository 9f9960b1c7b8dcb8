"""Placement stream: kubelet PodResources over a real unix-socket gRPC server, and the /proc fallback."""

from __future__ import annotations

from concurrent import futures
from pathlib import Path

import grpc

from agent.placement import LIST_METHOD, PlacementTracker, _podresources_messages, process_owner
from agent.snapshot import SnapshotBuilder

POD_UID = "0f3c2a1e-1111-2222-3333-444455556666"


def kubelet(socket_path: Path) -> grpc.Server:
    messages = _podresources_messages()

    def list_pods(request, context):
        response = messages["ListPodResourcesResponse"]()
        pod = response.pod_resources.add(name="trainer-0", namespace="ml")
        container = pod.containers.add(name="main")
        container.devices.add(resource_name="nvidia.com/gpu", device_ids=["GPU-aaa", "GPU-bbb"])
        container.devices.add(resource_name="example.com/nic", device_ids=["nic0"])
        return response

    handler = grpc.method_handlers_generic_handler(
        "v1.PodResourcesLister",
        {
            "List": grpc.unary_unary_rpc_method_handler(
                list_pods,
                request_deserializer=messages["ListPodResourcesRequest"].FromString,
                response_serializer=lambda m: m.SerializeToString(),
            )
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"unix://{socket_path}")
    server.start()
    return server


def test_kubelet_podresources_list(tmp_path: Path) -> None:
    assert LIST_METHOD == "/v1.PodResourcesLister/List"
    socket_path = tmp_path / "kubelet.sock"
    server = kubelet(socket_path)
    try:
        tracker = PlacementTracker(str(tmp_path / "proc"), str(socket_path), gpu_processes=None)
        builder = SnapshotBuilder({}, 1)
        assert tracker.poll(builder) == 2
        assert tracker.poll(SnapshotBuilder({}, 2)) == 0  # unchanged → nothing new
    finally:
        server.stop(0).wait(5)
    records = builder.build().events
    assert {dict(e.attributes)["hw.id"] for e in records} == {"GPU-aaa", "GPU-bbb"}
    attrs = dict(records[0].attributes)
    assert attrs["k8s.pod.name"] == "trainer-0" and attrs["k8s.namespace.name"] == "ml"
    assert attrs["placement.state"] == "start" and attrs["placement.source"] == "kubelet"
    assert all(e.name == "placement" for e in records)


def fake_proc(root: Path, pid: int, cgroup: str, environ: bytes = b"") -> None:
    d = root / str(pid)
    d.mkdir(parents=True)
    (d / "cgroup").write_text(cgroup)
    (d / "environ").write_bytes(environ)


def test_proc_fallback_pod_uid_and_slurm_job(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    container = "c" * 64
    fake_proc(
        proc,
        101,
        f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{POD_UID.replace('-', '_')}.slice/"
        f"cri-containerd-{container}.scope\n",
    )
    fake_proc(proc, 202, "0::/system.slice/slurmstepd.scope/job_4242/step_0\n", b"HOME=/root\0SLURM_JOB_ID=4242\0")
    assert process_owner(proc, 101) == {"k8s.pod.uid": POD_UID, "container.id": container}
    assert process_owner(proc, 202) == {"slurm.job.id": "4242"}
    assert process_owner(proc, 999) == {}  # gone or unreadable: no owner, no crash

    gpus = {"GPU-aaa": (0, [101, 101]), "GPU-bbb": (1, [202, 999])}
    tracker = PlacementTracker(str(proc), str(tmp_path / "absent.sock"), gpu_processes=lambda: gpus)
    first = SnapshotBuilder({}, 1)
    assert tracker.poll(first) == 2
    gpus["GPU-bbb"] = (1, [])  # the SLURM job ended
    second = SnapshotBuilder({}, 2)
    assert tracker.poll(second) == 1
    (end,) = second.build().events
    end_attrs = dict(end.attributes)
    assert end_attrs["placement.state"] == "end" and end_attrs["slurm.job.id"] == "4242"
    assert end_attrs["placement.start"] == "1" and end_attrs["placement.end"] == "2"
