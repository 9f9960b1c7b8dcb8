"""The Helm chart against the real helm binary, kubernetes-validate's schemas and the real config loaders.

Every values combination in helm/fleetpulse/ci (plus the defaults) must lint strictly, render, pass
strict schema validation for Kubernetes 1.33, and wire together: the agent mounts every path its
rendered config reads, the collector's Service exposes the ports its rendered config listens on,
secrets referenced exist, and the ClickHouseInstallation's cluster is the collector's cluster.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate
import pytest
import yaml

from agent.config_schema import parse_config as parse_agent_config
from tests.conftest import REPO, require_tool

CHART = REPO / "helm" / "fleetpulse"
SYNC_SCRIPT = REPO / "helm" / "sync-dashboards.sh"
KUBERNETES_VERSION = "1.33.0"
NAMESPACE = "telemetry"
RELEASE = "fp"
COMBOS = ["default", *sorted(p.stem for p in (CHART / "ci").glob("*.yaml"))]

# Kinds served by CRDs: kubernetes-validate has no schema for them; checked by hand below.
CUSTOM_KINDS = {
    ("clickhouse.altinity.com/v1", "ClickHouseInstallation"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
}


# --- helpers ---------------------------------------------------------------------------------------


@functools.cache
def helm() -> str:
    return require_tool("helm")


def _values_args(combo: str) -> list[str]:
    return [] if combo == "default" else ["-f", str(CHART / "ci" / f"{combo}.yaml")]


def run_helm(*args: str, chart: Path = CHART) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [helm(), *args[:1], *([RELEASE] if args[0] in ("template", "install") else []), str(chart), *args[1:]],
        capture_output=True,
        text=True,
        timeout=60,
    )


def render(*args: str, chart: Path = CHART) -> list[dict[str, Any]]:
    proc = run_helm("template", "--namespace", NAMESPACE, *args, chart=chart)
    assert proc.returncode == 0, f"helm template {' '.join(args)} failed:\n{proc.stderr}"
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


@functools.cache
def _rendered(combo: str) -> tuple[dict[str, Any], ...]:
    return tuple(render(*_values_args(combo)))


def rendered(combo: str) -> list[dict[str, Any]]:
    return json.loads(json.dumps(_rendered(combo)))  # a private copy per test


def find(docs: list[dict[str, Any]], kind: str, name_suffix: str = "") -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(name_suffix)]


def one(docs: list[dict[str, Any]], kind: str, name_suffix: str = "") -> dict[str, Any]:
    found = find(docs, kind, name_suffix)
    assert len(found) == 1, f"expected one {kind} *{name_suffix}, got {[d['metadata']['name'] for d in found]}"
    return found[0]


def collector_workload(docs: list[dict[str, Any]]) -> dict[str, Any]:
    found = [
        d for d in docs if d["kind"] in ("StatefulSet", "Deployment") and d["metadata"]["name"].endswith("-collector")
    ]
    assert len(found) == 1, [d["metadata"]["name"] for d in found]
    return found[0]


def secret_data(docs: list[dict[str, Any]], name: str) -> dict[str, str]:
    secret = next((d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == name), None)
    assert secret is not None, f"Secret {name} is referenced but not rendered"
    return secret.get("stringData", {})


def is_under(path: str, mount: str) -> bool:
    return PurePosixPath(path) == PurePosixPath(mount) or PurePosixPath(mount) in PurePosixPath(path).parents


def mount_for(
    pod_spec: dict[str, Any], container: dict[str, Any], path: str, claims: list[dict] = ()
) -> tuple[dict, dict]:
    """(volumeMount, volume) that holds ``path`` in the container; fails when nothing does.

    A StatefulSet's claim templates count as volumes (``{"persistentVolumeClaim": template}``).
    """
    mounts = [m for m in container.get("volumeMounts", []) if is_under(path, m["mountPath"])]
    assert mounts, f"{path} is read by the config but no volume is mounted there: {container.get('volumeMounts')}"
    mount = max(mounts, key=lambda m: len(m["mountPath"]))
    volumes = [v for v in pod_spec.get("volumes", []) if v["name"] == mount["name"]]
    volumes += [
        {"name": c["metadata"]["name"], "persistentVolumeClaim": c}
        for c in claims
        if c["metadata"]["name"] == mount["name"]
    ]
    assert len(volumes) == 1, f"mount {mount['name']} must match exactly one volume, got {volumes}"
    return mount, volumes[0]


def secret_file_check(pod_spec: dict, container: dict, path: str, docs: list[dict]) -> None:
    """``path`` comes from a mounted Secret that provides that file name."""
    mount, volume = mount_for(pod_spec, container, path)
    assert mount.get("readOnly") is True, mount
    assert "secret" in volume, f"{path} should come from a Secret, got volume {volume}"
    relative = str(PurePosixPath(path).relative_to(mount["mountPath"]))
    items = volume["secret"].get("items")
    if items is not None:
        assert relative in [item["path"] for item in items], (path, items)
        key = next(item["key"] for item in items if item["path"] == relative)
    else:
        key = relative
    name = volume["secret"]["secretName"]
    if any(d["kind"] == "Secret" and d["metadata"]["name"] == name for d in docs):
        assert key in secret_data(docs, name), f"Secret {name} has no key {key}"


# --- lint, render, validate -----------------------------------------------------------------------


@pytest.mark.parametrize("combo", COMBOS)
def test_helm_lint_strict(combo: str) -> None:
    proc = run_helm("lint", "--strict", *_values_args(combo))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


@pytest.mark.parametrize("combo", COMBOS)
def test_builtin_kinds_pass_strict_kubernetes_validation(combo: str) -> None:
    docs = rendered(combo)
    builtin = [d for d in docs if (d["apiVersion"], d["kind"]) not in CUSTOM_KINDS]
    assert {"ServiceAccount", "ConfigMap"} <= {d["kind"] for d in builtin}, [d["kind"] for d in docs]
    for doc in builtin:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: not a built-in kind ({exc.message})")


@pytest.mark.parametrize("combo", COMBOS)
def test_custom_resources_are_well_formed(combo: str) -> None:
    for doc in rendered(combo):
        key = (doc["apiVersion"], doc["kind"])
        if key not in CUSTOM_KINDS:
            continue
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"]), doc["metadata"]
        assert doc["metadata"]["namespace"] == NAMESPACE
        spec = doc["spec"]
        if doc["kind"] == "ClickHouseInstallation":
            clusters = spec["configuration"]["clusters"]
            assert clusters and all(c["name"] for c in clusters)
            for cluster in clusters:
                assert int(cluster["layout"]["shardsCount"]) >= 1
                assert int(cluster["layout"]["replicasCount"]) >= 1
            templates = spec["templates"]
            assert spec["defaults"]["templates"]["podTemplate"] in [t["name"] for t in templates["podTemplates"]]
            claim = spec["defaults"]["templates"]["dataVolumeClaimTemplate"]
            assert claim in [t["name"] for t in templates["volumeClaimTemplates"]]
        elif doc["kind"] == "PrometheusRule":
            assert spec["groups"]
            for group in spec["groups"]:
                assert group["name"] and group["rules"]
                for rule in group["rules"]:
                    assert ("alert" in rule) != ("record" in rule) and rule["expr"], rule
        elif doc["kind"] == "ServiceMonitor":
            assert spec["selector"]["matchLabels"] and spec["endpoints"]
            service = next(
                d
                for d in rendered(combo)
                if d["kind"] == "Service" and d["metadata"]["name"] == doc["metadata"]["name"]
            )
            assert spec["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
            for endpoint in spec["endpoints"]:
                assert endpoint["port"] in [p["name"] for p in service["spec"]["ports"]]
        elif doc["kind"] == "PodMonitor":
            daemonset = one(rendered(combo), "DaemonSet", "-agent")
            assert (
                spec["selector"]["matchLabels"].items() <= daemonset["spec"]["template"]["metadata"]["labels"].items()
            )
            ports = [p["name"] for p in daemonset["spec"]["template"]["spec"]["containers"][0]["ports"]]
            assert all(e["port"] in ports for e in spec["podMetricsEndpoints"])


def test_crds_render_only_when_enabled() -> None:
    default_kinds = {d["kind"] for d in rendered("default")}
    assert not default_kinds & {"ServiceMonitor", "PodMonitor", "PrometheusRule", "ClickHouseInstallation"}
    assert {"ServiceMonitor", "PodMonitor"} <= {d["kind"] for d in rendered("monitoring-values")}
    assert "ClickHouseInstallation" in {d["kind"] for d in rendered("altinity-chi-values")}


# --- agent ----------------------------------------------------------------------------------------


def agent_parts(docs: list[dict]) -> tuple[dict, dict, Any]:
    daemonset = one(docs, "DaemonSet", "-agent")
    pod = daemonset["spec"]["template"]["spec"]
    container = pod["containers"][0]
    config_path = container["args"][container["args"].index("--config") + 1]
    _mount, volume = mount_for(pod, container, config_path)
    configmap = next(
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == volume["configMap"]["name"]
    )
    text = configmap["data"][PurePosixPath(config_path).name]
    return pod, container, parse_agent_config(text, f"{configmap['metadata']['name']}/agent.yaml")


@pytest.mark.parametrize("combo", [c for c in COMBOS])
def test_agent_mounts_every_path_its_config_reads(combo: str) -> None:
    docs = rendered(combo)
    pod, container, config = agent_parts(docs)
    host_paths = [config.roots.sysfs, config.roots.procfs, config.roots.kmsg]
    if config.placement.enabled:
        host_paths.append(config.placement.kubelet_socket)
    for path in host_paths:
        mount, volume = mount_for(pod, container, path)
        assert "hostPath" in volume, f"{path} must come from the host, got {volume}"
        assert mount.get("readOnly") is True, f"{path}: host mounts are read-only, got {mount}"
    # The mount points map to the real host locations.
    by_host = {v["hostPath"]["path"]: v["name"] for v in pod["volumes"] if "hostPath" in v}
    mount_of = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mount_of[by_host["/sys"]] == config.roots.sysfs
    assert mount_of[by_host["/proc"]] == config.roots.procfs
    assert mount_of[by_host["/dev/kmsg"]] == config.roots.kmsg
    for path in (config.otlp.token_file, config.otlp.ca_file, config.otlp.cert_file, config.otlp.key_file):
        if path:
            secret_file_check(pod, container, path, docs)
    mount, volume = mount_for(pod, container, config.buffer.dir)
    assert not mount.get("readOnly") and "emptyDir" in volume
    assert config.prometheus_listen.rpartition(":")[2] == str(container["ports"][0]["containerPort"])
    probe = container["livenessProbe"]["httpGet"]
    assert probe["path"] == "/healthz" and probe["port"] == container["ports"][0]["name"]


def test_agent_is_least_privilege_by_default() -> None:
    pod, container, _ = agent_parts(rendered("default"))
    security = container["securityContext"]
    assert not security.get("privileged", False)
    assert security["capabilities"]["drop"] == ["ALL"] and not security["capabilities"].get("add")
    assert security["allowPrivilegeEscalation"] is False and security["readOnlyRootFilesystem"] is True
    assert not pod.get("hostNetwork") and not pod.get("hostPID")
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert "runtimeClassName" not in pod
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["NVIDIA_VISIBLE_DEVICES"] == "all" and env["NVIDIA_DRIVER_CAPABILITIES"] == "utility"
    assert all(m.get("readOnly") for m in container["volumeMounts"] if m["mountPath"].startswith("/host/"))


def test_agent_reports_the_node_name_not_the_pod_name(monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.runtime.sources import resource_attributes

    _, container, config = agent_parts(rendered("external-clickhouse-values"))
    env = {e["name"]: e for e in container["env"]}
    assert env["K8S_NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    # The kubelet expands $(K8S_NODE_NAME) because it is defined earlier in the list.
    names = list(env)
    assert names.index("K8S_NODE_NAME") < names.index("OTEL_RESOURCE_ATTRIBUTES")
    value = env["OTEL_RESOURCE_ATTRIBUTES"]["value"].replace("$(K8S_NODE_NAME)", "gpu-node-17")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", value)
    resource = resource_attributes(config)
    assert resource["k8s.node.name"] == resource["host.name"] == "gpu-node-17"
    assert resource["k8s.cluster.name"] == "prod-east"


def test_runtime_class_and_privileged_opt_in() -> None:
    pod, container, config = agent_parts(rendered("runtimeclass-values"))
    assert pod["runtimeClassName"] == "nvidia"
    assert container["securityContext"]["privileged"] is True
    assert pod["affinity"]["nodeAffinity"] and "nodeSelector" not in pod
    assert config.interval_s == 5 and config.resource["rack"] == "r12"
    assert config.otlp.endpoint.startswith("https://") and config.otlp.insecure is False
    # The token comes from the user's Secret, which the chart must not create.
    _, volume = mount_for(pod, container, config.otlp.token_file)
    assert volume["secret"]["secretName"] == "fleetpulse-agent-token"
    assert not any(
        d["kind"] == "Secret" and d["metadata"]["name"] == "fleetpulse-agent-token"
        for d in rendered("runtimeclass-values")
    )


# --- collector ------------------------------------------------------------------------------------


def collector_parts(docs: list[dict], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[dict, dict, Any]:
    from collector.config import load_config as load_collector_config

    workload = collector_workload(docs)
    pod = workload["spec"]["template"]["spec"]
    container = pod["containers"][0]
    config_path = container["args"][container["args"].index("--config") + 1]
    _, volume = mount_for(pod, container, config_path)
    configmap = next(
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == volume["configMap"]["name"]
    )
    file = tmp_path / "collector.yaml"
    file.write_text(configmap["data"]["collector.yaml"])
    for name in ("FLEETPULSE_STORAGE_DSN", "FLEETPULSE_TOKENS"):
        monkeypatch.delenv(name, raising=False)
    return pod, container, load_collector_config(file)


COLLECTOR_COMBOS = [c for c in COMBOS if c != "runtimeclass-values"]  # that one runs agents only


@pytest.mark.parametrize("combo", COLLECTOR_COMBOS)
def test_service_ports_match_collector_config(combo: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from collector.auth import check_bind
    from collector.config import parse_listen

    docs = rendered(combo)
    _pod, container, config = collector_parts(docs, monkeypatch, tmp_path)
    service = one(docs, "Service", "-collector")
    container_ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    expected = {"otlp-grpc": config.otlp.grpc_listen, "otlp-http": config.otlp.http_listen, "api": config.api.listen}
    service_ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert set(service_ports) == set(expected)
    check_bind(config.auth.mode, {name: parse_listen(listen) for name, listen in expected.items()})
    for name, listen in expected.items():
        host, port = parse_listen(listen)
        assert host == "0.0.0.0", f"{name} listens on {host}: unreachable through the Service"
        assert container_ports[service_ports[name]["targetPort"]] == port, name
    assert service["spec"]["selector"].items() <= pod_labels(collector_workload(docs)).items()
    # The agents of this release send to one of those ports.
    if find(docs, "DaemonSet"):
        _, _, agent_config = agent_parts(docs)
        endpoint = agent_config.otlp.endpoint
        wanted = "otlp-grpc" if agent_config.otlp.protocol == "grpc" else "otlp-http"
        assert endpoint.endswith(f"{service['metadata']['name']}.{NAMESPACE}.svc:{service_ports[wanted]['port']}")


def pod_labels(workload: dict) -> dict:
    return workload["spec"]["template"]["metadata"]["labels"]


@pytest.mark.parametrize("combo", COLLECTOR_COMBOS)
def test_collector_mounts_every_path_its_config_reads(
    combo: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    docs = rendered(combo)
    pod, container, config = collector_parts(docs, monkeypatch, tmp_path)
    workload = collector_workload(docs)
    claims = workload["spec"].get("volumeClaimTemplates", [])
    for path in (str(config.wal_dir), config.storage_dsn.removeprefix("chdb://")):
        mount, volume = mount_for(pod, container, path, claims)
        assert not mount.get("readOnly"), path
        if workload["kind"] == "StatefulSet":
            assert "persistentVolumeClaim" in volume, f"{path} must persist, got {volume}"
            assert workload["spec"]["serviceName"] in [d["metadata"]["name"] for d in find(docs, "Service")]
        else:
            assert "emptyDir" in volume
        if not config.storage_dsn.startswith("chdb://"):
            break
    for path in (config.auth.tokens_file, config.tls.cert_file, config.tls.key_file, config.tls.client_ca_file):
        if path:
            secret_file_check(pod, container, path, docs)
    assert config.storage.database == "fleetpulse"


def test_persistence_chooses_statefulset_and_emptydir_warns(tmp_path: Path) -> None:
    assert collector_workload(rendered("default"))["kind"] == "StatefulSet"
    workload = collector_workload(rendered("no-persistence-values"))
    assert workload["kind"] == "Deployment"
    proc = run_helm("install", "--dry-run=client", "--namespace", NAMESPACE, *_values_args("no-persistence-values"))
    assert proc.returncode == 0, proc.stderr
    notes = proc.stdout.split("NOTES:", 1)[1]
    assert "WARNING: collector.persistence.enabled=false" in notes and "LOST" in notes
    default_notes = run_helm("install", "--dry-run=client", "--namespace", NAMESPACE).stdout.split("NOTES:", 1)[1]
    assert "WARNING: collector.persistence" not in default_notes


def test_hpa_and_pdb_target_the_collector() -> None:
    docs = rendered("external-clickhouse-values")
    workload = collector_workload(docs)
    hpa = one(docs, "HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == (workload["kind"], workload["metadata"]["name"])
    assert "replicas" not in workload["spec"], "the HPA owns replicas"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 10)
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels(workload).items()
    claim = workload["spec"]["volumeClaimTemplates"][0]["spec"]
    assert claim["storageClassName"] == "fast-ssd" and claim["resources"]["requests"]["storage"] == "50Gi"


# --- secrets, storage, auth -----------------------------------------------------------------------


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env") or []}


def test_generated_agent_token_is_registered_with_the_collector() -> None:
    docs = rendered("default")
    pod, container, config = agent_parts(docs)
    _, volume = mount_for(pod, container, config.otlp.token_file)
    token = secret_data(docs, volume["secret"]["secretName"])["token"]
    assert len(token) >= 32
    collector_pod = collector_workload(docs)["spec"]["template"]["spec"]
    auth_volume = next(v for v in collector_pod["volumes"] if v["name"] == "auth")
    tokens = yaml.safe_load(secret_data(docs, auth_volume["secret"]["secretName"])["tokens.yaml"])
    assert tokens == {token: "default"}


def test_explicit_tokens_and_mutual_tls() -> None:
    docs = rendered("tls-tokens-values")
    pod, container, config = agent_parts(docs)
    _, volume = mount_for(pod, container, config.otlp.token_file)
    assert secret_data(docs, volume["secret"]["secretName"])["token"] == "agent-token-prod-1234567890"
    collector_pod = collector_workload(docs)["spec"]["template"]["spec"]
    auth_volume = next(v for v in collector_pod["volumes"] if v["name"] == "auth")
    tokens = yaml.safe_load(secret_data(docs, auth_volume["secret"]["secretName"])["tokens.yaml"])
    assert tokens["agent-token-prod-1234567890"] == "gpu-prod" and len(tokens) == 2
    assert config.otlp.endpoint.startswith("https://") and config.otlp.insecure is False
    assert config.otlp.endpoint.endswith(":4318") and config.otlp.protocol == "http/protobuf"
    assert config.otlp.ca_file and config.otlp.cert_file and config.otlp.key_file
    tls_volume = next(v for v in collector_pod["volumes"] if v["name"] == "tls")
    assert tls_volume["secret"]["secretName"] == "fleetpulse-collector-tls"
    probe = collector_pod["containers"][0]["livenessProbe"]
    assert "tcpSocket" in probe, "kubelet cannot present a client certificate"
    env = env_of(collector_pod["containers"][0])
    assert env["FLEETPULSE_STORAGE_DSN"]["valueFrom"]["secretKeyRef"] == {"name": "clickhouse-dsn", "key": "url"}
    policies = find(docs, "NetworkPolicy")
    assert len(policies) == 2


def test_external_dsn_comes_from_a_secret_and_feeds_the_datasource() -> None:
    docs = rendered("external-clickhouse-values")
    container = collector_workload(docs)["spec"]["template"]["spec"]["containers"][0]
    ref = env_of(container)["FLEETPULSE_STORAGE_DSN"]["valueFrom"]["secretKeyRef"]
    assert secret_data(docs, ref["name"])[ref["key"]] == "https://fleetpulse:s3cret@clickhouse.db.svc:8443"
    configmap = one(docs, "ConfigMap", "-collector")
    assert "s3cret" not in json.dumps(configmap), "credentials belong in Secrets"
    assert yaml.safe_load(configmap["data"]["collector.yaml"])["storage"]["cluster"] == "prod"
    datasource_secret = next(
        d for d in docs if d["kind"] == "Secret" and "grafana_datasource" in d["metadata"]["labels"]
    )
    provisioning = yaml.safe_load(datasource_secret["stringData"]["fleetpulse-datasource.yaml"])
    source = provisioning["datasources"][0]
    assert source["type"] == "grafana-clickhouse-datasource"
    assert {"host": "clickhouse.db.svc", "port": 8443, "secure": True, "username": "fleetpulse"}.items() <= source[
        "jsonData"
    ].items()
    assert source["secureJsonData"]["password"] == "s3cret"


def test_clickhouse_installation_cluster_is_wired_to_the_collector(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    docs = rendered("altinity-chi-values")
    chi = one(docs, "ClickHouseInstallation")
    _, container, config = collector_parts(docs, monkeypatch, tmp_path)
    cluster = chi["spec"]["configuration"]["clusters"][0]
    assert cluster["name"] == config.storage.cluster == "gpu-fleet"
    assert (cluster["layout"]["shardsCount"], cluster["layout"]["replicasCount"]) == (2, 2)
    assert len(chi["spec"]["configuration"]["zookeeper"]["nodes"]) == 3
    env = env_of(container)
    dsn = env["FLEETPULSE_STORAGE_DSN"]["value"]
    assert (
        dsn
        == f"http://fleetpulse:$(FLEETPULSE_CLICKHOUSE_PASSWORD)@clickhouse-{chi['metadata']['name']}.{NAMESPACE}.svc:8123"
    )
    names = list(env)
    assert names.index("FLEETPULSE_CLICKHOUSE_PASSWORD") < names.index("FLEETPULSE_STORAGE_DSN"), (
        "$(VAR) expands only earlier vars"
    )
    ref = env["FLEETPULSE_CLICKHOUSE_PASSWORD"]["valueFrom"]["secretKeyRef"]
    password = secret_data(docs, ref["name"])[ref["key"]]
    assert re.fullmatch(r"[A-Za-z0-9]{32}", password), "generated password must be URL-safe"
    assert chi["spec"]["configuration"]["users"]["fleetpulse/k8s_secret_password"] == f"{ref['name']}/{ref['key']}"
    datasource_secret = next(
        d for d in docs if d["kind"] == "Secret" and "grafana_datasource" in d["metadata"]["labels"]
    )
    source = yaml.safe_load(datasource_secret["stringData"]["fleetpulse-datasource.yaml"])["datasources"][0]
    assert source["jsonData"]["host"] == f"clickhouse-{chi['metadata']['name']}.{NAMESPACE}.svc"
    assert source["secureJsonData"]["password"] == password, "drawn once for both Secrets"


def test_embedded_storage_has_no_datasource_and_uses_the_volume(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    docs = rendered("default")
    _, container, config = collector_parts(docs, monkeypatch, tmp_path)
    assert config.storage.dsn == "chdb:///var/lib/fleetpulse/clickhouse"
    assert "FLEETPULSE_STORAGE_DSN" not in env_of(container)
    assert not [d for d in docs if "grafana_datasource" in d["metadata"].get("labels", {})]


# --- bad values: rejected with the value to change ------------------------------------------------

BAD_VALUES = {
    "typo": (["--set", "collector.replicaz=2"], "additional properties 'replicaz' not allowed"),
    "bad-enum": (["--set", "storage.mode=postgres"], "storage/mode"),
    "embedded-scaled": (["--set", "collector.replicas=3"], "storage.mode=embedded keeps chDB inside one collector pod"),
    "external-no-dsn": (["--set", "storage.mode=external"], "storage.mode=external needs storage.external.dsn"),
    "dsn-scheme": (
        ["--set", "storage.mode=external", "--set", "storage.external.dsn=tcp://u:hunter2@h:9000"],
        'must start with http:// or https:// (a ClickHouse server), got "tcp://u:***@h:9000"',
    ),
    "replicas-no-keeper": (
        ["--set", "storage.mode=clickhouseInstallation", "--set", "storage.clickhouseInstallation.replicas=2"],
        "needs ClickHouse Keeper/ZooKeeper",
    ),
    "tls-no-secret": (["--set", "collector.tls.enabled=true"], "collector.tls.enabled needs collector.tls.secretName"),
    "auth-none": (["--set", "collector.auth.mode=none"], "additional properties 'mode' not allowed"),
    "tokens-secret-no-agent-token": (
        ["--set", "collector.auth.existingSecret=mine"],
        "set agent.otlp.existingSecret (or agent.otlp.token)",
    ),
    "bad-port": (["--set", "collector.ports.api=70000"], "collector/ports/api"),
}


@pytest.mark.parametrize("case", list(BAD_VALUES))
def test_bad_values_are_rejected_with_the_value_to_change(case: str) -> None:
    args, message = BAD_VALUES[case]
    proc = run_helm("template", *args)
    assert proc.returncode != 0, f"{case} rendered:\n{proc.stdout[:500]}"
    assert message in proc.stderr, proc.stderr
    assert "hunter2" not in proc.stderr


# --- dashboards and alert rules from files/ ---------------------------------------------------------


def chart_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "fleetpulse"
    shutil.copytree(CHART, copy)
    for sub in ("dashboards", "alerts"):
        shutil.rmtree(copy / "files" / sub, ignore_errors=True)
    return copy


def test_dashboards_and_alert_rules_render_from_chart_files(tmp_path: Path) -> None:
    chart = chart_copy(tmp_path)
    (chart / "files/dashboards").mkdir(parents=True)
    (chart / "files/alerts/prometheus").mkdir(parents=True)
    (chart / "files/alerts/grafana").mkdir(parents=True)
    dashboards = {
        "GPU Overview.json": {"title": "GPU overview", "uid": "fp-gpu", "panels": [{"id": 1, "title": "temp"}]},
        "throttle.json": {"title": "Throttle", "uid": "fp-throttle", "panels": []},
    }
    for name, body in dashboards.items():
        (chart / "files/dashboards" / name).write_text(json.dumps(body, indent=2))
    groups = [
        {"name": "slo-xid", "rules": [{"alert": "GpuXidBurn", "expr": "sum(rate(x[5m])) > 1", "for": "2m"}]},
        {"name": "slo-ecc", "rules": [{"record": "fleetpulse:ecc:rate5m", "expr": "rate(y[5m])"}]},
    ]
    (chart / "files/alerts/prometheus/a.yaml").write_text(yaml.safe_dump({"groups": groups[:1]}))
    (chart / "files/alerts/prometheus/b.yaml").write_text(yaml.safe_dump({"groups": groups[1:]}))
    (chart / "files/alerts/grafana/rules.yaml").write_text("apiVersion: 1\ngroups: []\n")

    external = ["--set", "storage.mode=external", "--set", "storage.external.dsn=http://ch:8123"]
    docs = render("--set", "monitoring.prometheusRule.enabled=true", *external, chart=chart)
    boards = [d for d in docs if d["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
    assert len(boards) == 2
    contents = {key: json.loads(value) for d in boards for key, value in d["data"].items()}
    assert contents == dashboards
    assert all(d["metadata"]["annotations"]["grafana_folder"] == "fleetpulse" for d in boards)
    rule = one(docs, "PrometheusRule")
    assert rule["spec"]["groups"] == groups
    alerts = next(d for d in docs if d["metadata"].get("labels", {}).get("grafana_alert") == "1")
    assert "rules.yaml" in alerts["data"]
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) not in CUSTOM_KINDS:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)

    # A broken rule file fails the render and names the file.
    (chart / "files/alerts/prometheus/c.yaml").write_text("groups: [unclosed\n")
    proc = run_helm("template", "--set", "monitoring.prometheusRule.enabled=true", chart=chart)
    assert proc.returncode != 0 and "files/alerts/prometheus/c.yaml is not valid YAML" in proc.stderr


def test_grafana_alert_rules_use_the_provisioned_datasource() -> None:
    docs = rendered("external-clickhouse-values")
    datasource_secret = next(
        d for d in docs if d["kind"] == "Secret" and "grafana_datasource" in d["metadata"]["labels"]
    )
    uid = yaml.safe_load(datasource_secret["stringData"]["fleetpulse-datasource.yaml"])["datasources"][0]["uid"]
    alert_maps = [d for d in docs if d["metadata"].get("labels", {}).get("grafana_alert") == "1"]
    packaged = list((CHART / "files/alerts/grafana").glob("*.yaml"))
    assert len(alert_maps) == (1 if packaged else 0)
    used = set()
    for config_map in alert_maps:
        for text in config_map["data"].values():
            used |= set(re.findall(r"datasourceUid:\s*\"?([\w-]+)", text))
    assert used <= {uid, "__expr__"}, f"alert rules query datasources {used}, the chart provisions {uid!r}"
    assert not [d for d in rendered("default") if "grafana_alert" in d["metadata"].get("labels", {})]


def test_chart_renders_with_no_dashboards_or_rules(tmp_path: Path) -> None:
    docs = render("--set", "monitoring.prometheusRule.enabled=true", chart=chart_copy(tmp_path))
    assert not find(docs, "PrometheusRule")
    assert not [d for d in docs if "grafana_dashboard" in d["metadata"].get("labels", {})]


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_chart_copies_of_dashboards_and_alerts_are_fresh(tmp_path: Path) -> None:
    proc = subprocess.run(["bash", str(SYNC_SCRIPT), str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    fresh = _tree(tmp_path)
    packaged = {k: v for k, v in _tree(CHART / "files").items() if k != "README.md"}
    sources = len(list((REPO / "dashboards").glob("*.json")))
    assert len([k for k in fresh if k.startswith("dashboards/")]) == sources
    stale = sorted(set(fresh) ^ set(packaged) | {k for k in fresh.keys() & packaged.keys() if fresh[k] != packaged[k]})
    assert not stale, f"helm/fleetpulse/files is stale ({stale}): run helm/sync-dashboards.sh and commit"


# --- values.schema.json covers every value ----------------------------------------------------------


def _leaf_paths(value: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if isinstance(value, dict) and value:
        return [p for k, v in value.items() for p in _leaf_paths(v, (*prefix, k))]
    return [prefix]


def test_values_schema_describes_every_value() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for path in _leaf_paths(values):
        node = schema
        for key in path:
            assert node.get("type") == "object", f"{'.'.join(path)}: schema expects {node.get('type')} at {key}"
            if "properties" not in node:  # a free-form map (resources, affinity, config...)
                break
            assert key in node["properties"], f"values.schema.json does not describe {'.'.join(path)}"
            node = node["properties"][key]

    def closed(node: dict, where: str) -> None:
        if "properties" in node:
            assert node.get("additionalProperties") is False, f"{where}: unknown keys must be rejected"
            for key, sub in node["properties"].items():
                closed(sub, f"{where}.{key}")

    closed(schema, "values")


# --- Dockerfiles ------------------------------------------------------------------------------------

STORAGE_PACKAGES = ("chdb", "pyarrow", "pandas", "clickhouse-connect", "clickhouse_connect", "uvicorn", "starlette")


def dockerfile_instructions(name: str) -> list[tuple[str, str]]:
    text = (REPO / "docker" / name).read_text()
    text = re.sub(r"\\\n", " ", text)
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def pip_install_args(instructions: list[tuple[str, str]]) -> list[list[str]]:
    installs = []
    for op, arg in instructions:
        if op != "RUN":
            continue
        for command in re.split(r"&&|;", arg):
            words = command.split()
            if "pip" in " ".join(words[:1]) and "install" in words:
                installs.append([w.strip("\"'") for w in words[words.index("install") + 1 :] if not w.startswith("-")])
    return installs


@pytest.mark.parametrize("name", ["agent.Dockerfile", "collector.Dockerfile"])
def test_dockerfiles_are_slim_multi_stage_and_non_root(name: str) -> None:
    instructions = dockerfile_instructions(name)
    stages = [arg for op, arg in instructions if op == "FROM"]
    assert len(stages) >= 2 and all(s.split()[0] == "python:3.11-slim" for s in stages), stages
    final = max(i for i, (op, _) in enumerate(instructions) if op == "FROM")
    tail = instructions[final:]
    assert any(op == "COPY" and arg.startswith("--from=") for op, arg in tail), "final stage copies the built venv"
    assert not pip_install_args(tail), "no installs in the runtime stage"
    users = [arg for op, arg in tail if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root"), users


def test_agent_image_installs_no_storage_stack() -> None:
    instructions = dockerfile_instructions("agent.Dockerfile")
    installs = pip_install_args(instructions)
    assert installs == [["."]], f"the agent image installs the base distribution only, got {installs}"
    copied = " ".join(arg for op, arg in instructions if op in ("COPY", "ADD") and not arg.startswith("--from"))
    assert "collector" not in copied.split(), "the agent image does not ship collector code"
    flat = " ".join(w for args in installs for w in args).lower()
    assert not any(pkg in flat for pkg in STORAGE_PACKAGES)
    # And the base distribution itself does not pull the storage stack.
    import tomllib

    base = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert not [d for d in base if re.split(r"[<>=\[ ;]", d.lower())[0] in STORAGE_PACKAGES], base


def test_collector_image_installs_the_collector_extra() -> None:
    assert pip_install_args(dockerfile_instructions("collector.Dockerfile")) == [[".[collector]"]]


def test_dockerignore_keeps_the_context_small() -> None:
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".tools", "tests", "fleetpulse-data"} <= ignored
    assert not {"agent", "collector", "pyproject.toml", "README.md"} & ignored


def test_sync_script_is_executable() -> None:
    assert os.access(SYNC_SCRIPT, os.X_OK)
