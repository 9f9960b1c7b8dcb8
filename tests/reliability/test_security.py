"""Security: tenant isolation for writes and reads (SQL escapes included), read-only API, audit records,
TLS and mTLS on both OTLP listeners and the API, secrets kept out of logs, redaction end to end."""

from __future__ import annotations

import datetime as dt
import hashlib
import http.client
import ipaddress
import json
import os
import ssl
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import grpc
import pytest

from collector.spool.wal import scan
from tests.conftest import REPO, free_port
from tests.otlp_clients import get, metrics_request, post, query
from tests.reliability.helpers import ALPHA, BETA, CollectorProcess, InProcess, inprocess_config, wait_for
from tests.test_collector_e2e import ESCAPES

pytestmark = pytest.mark.timeout(180)

METRICS_PATH = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from collector.store.settings import StorageSettings
    from collector.store.writer import Store

    s = Store(StorageSettings(dsn=f"chdb://{tmp_path_factory.mktemp('chdb')}"))
    yield s
    s.close()


@pytest.fixture
def collector(store, tmp_path):
    c = InProcess(inprocess_config(tmp_path), store=store)
    yield c
    c.stop()


# ------------------------------------------------------------------------------------------- tenant isolation


def test_a_token_writes_only_as_its_own_tenant(collector: InProcess) -> None:
    """Nothing in the request picks the tenant: not a point or resource attribute, not a header or gRPC
    metadata; the token does."""
    spoof = {"tenant": "beta", "X-Scope-OrgID": "beta", "X-Tenant": "beta"}
    req = metrics_request(cluster="iso-w", extra_point_attrs={"tenant": "beta"})
    kv = req.resource_metrics[0].resource.attributes.add()
    kv.key, kv.value.string_value = "tenant", "beta"
    body = req.SerializeToString()
    assert post(collector.http, "/v1/metrics", body, token=ALPHA, headers=spoof)[0] == 200
    with grpc.insecure_channel(f"127.0.0.1:{collector.grpc}") as channel:
        md = (("authorization", f"Bearer {ALPHA}"), ("tenant", "beta"), ("x-scope-orgid", "beta"))
        channel.unary_unary(METRICS_PATH)(body, metadata=md, timeout=5)
    assert collector.wait_count("SELECT count() FROM samples WHERE cluster = 'iso-w'", 12) == 12
    assert collector.count("SELECT count() FROM samples WHERE cluster = 'iso-w'", BETA) == 0
    assert collector.count("SELECT uniqExact(tenant) FROM samples WHERE cluster = 'iso-w'") == 1


EXTRA_ESCAPES = [
    "SELECT * FROM samples, information_schema.tables",
    "SELECT * FROM samples AS s, other_db.t",
    "SELECT * FROM samples, fleetpulse.schema_migrations",
    "SELECT * FROM INFORMATION_SCHEMA.COLUMNS",
    "SELECT * FROM samples CROSS JOIN information_schema.schemata",
    "SELECT * FROM samples WHERE tenant = 'beta' SETTINGS additional_table_filters = {}",
    "SELECT * FROM samples LIMIT 1; SELECT * FROM system.one",
    "SELECT * FROM samples_1m, system.parts",
    "SELECT * FROM (SELECT 1) AS x, remote('127.0.0.1', fleetpulse.samples)",
    "SELECT * FROM view(SELECT * FROM samples)",
    "SELECT * FROM cluster('default', fleetpulse.samples)",
    "SELECT * FROM executable('id', 'TSV', 'x String')",
    "SELECT * FROM s3('http://127.0.0.1:1/x', 'CSV')",
    "SELECT joinGet('fleetpulse.j', 'v', 1)",
]
DDL_AND_WRITES = [
    "CREATE TABLE x (a Int8) ENGINE = Memory",
    "DROP TABLE samples",
    "TRUNCATE TABLE samples",
    "RENAME TABLE samples TO s2",
    "OPTIMIZE TABLE samples FINAL",
    "INSERT INTO samples (tenant) VALUES ('beta')",
    "ALTER TABLE samples UPDATE value = 0 WHERE 1",
    "DELETE FROM samples WHERE 1",
    "SET readonly = 0",
    "GRANT ALL ON *.* TO default",
    "KILL QUERY WHERE 1",
    "SYSTEM STOP MERGES",
    "SHOW TABLES FROM system",
    "DESCRIBE TABLE system.tables",
    "EXPLAIN SELECT * FROM system.tables",
    "ATTACH TABLE t",
    "WITH 1 AS x INSERT INTO samples SELECT * FROM samples",
]


def test_a_token_reads_only_its_own_tenant_whatever_the_sql(collector: InProcess) -> None:
    for token in (ALPHA, BETA):
        body = metrics_request(cluster="iso-r").SerializeToString()
        assert post(collector.http, "/v1/metrics", body, token=token)[0] == 200
    for token in (ALPHA, BETA):
        assert collector.wait_count("SELECT count() FROM samples WHERE cluster = 'iso-r'", 6, token) == 6
    for sql in ESCAPES + EXTRA_ESCAPES + DDL_AND_WRITES:
        status, body = query(collector.api, sql, ALPHA)
        assert status == 400, (sql, body)
    # the store is unchanged by any of it, and the tenant filter held on every path
    assert collector.count("SELECT count() FROM samples WHERE cluster = 'iso-r'", BETA) == 6
    for sql in (
        "SELECT count() FROM samples WHERE cluster = 'iso-r' OR tenant = 'beta'",
        "SELECT count() FROM samples AS a, samples_1m AS b WHERE a.cluster = 'iso-r' AND b.cluster = 'iso-r' AND a.series_id = b.series_id",
        "SELECT count() FROM samples WHERE cluster = 'iso-r' AND tenant != 'alpha'",
    ):
        status, body = query(collector.api, sql, ALPHA)
        assert status == 200, body
    assert collector.count("SELECT count() FROM samples WHERE cluster = 'iso-r' AND tenant != 'alpha'") == 0
    assert collector.count("SELECT count() FROM samples WHERE cluster = 'iso-r' OR tenant = 'beta'") == 6


# ------------------------------------------------------------------------------------------- audit


def test_every_read_api_query_leaves_a_tenant_scoped_audit_record(collector: InProcess) -> None:
    body = metrics_request(cluster="audit").SerializeToString()
    assert post(collector.http, "/v1/metrics", body, token=ALPHA)[0] == 200
    collector.wait_count("SELECT count() FROM samples WHERE cluster = 'audit'", 6)
    q1 = "SELECT metric, value FROM samples WHERE cluster = 'audit' AND value > 1"
    q2 = "select   metric, value from samples where cluster = 'other'  and value > 99 -- same shape"
    assert query(collector.api, q1, ALPHA)[0] == 200
    assert query(collector.api, q2, ALPHA)[0] == 200
    assert query(collector.api, "SELECT * FROM system.tables", ALPHA)[0] == 400
    assert query(collector.api, "SELECT 1", BETA)[0] == 200
    assert get(collector.api, "/api/v1/reports/no-such", ALPHA)[0] == 404

    status, _, raw = get(collector.api, "/api/v1/audit", ALPHA)
    assert status == 200
    records = json.loads(raw)["records"]
    assert {r["tenant"] for r in records} == {"alpha"}  # beta's query is not visible to alpha
    alpha_id = hashlib.sha256(ALPHA.encode()).hexdigest()[:8]
    assert {r["token_id"] for r in records} == {alpha_id}
    queries = [r for r in records if r["endpoint"] == "query"]
    assert len(queries) >= 4  # wait_count's polling queries are audited as well
    first, second, refused = queries[-3:]
    assert first["rows"] == 6 and first["status"] == 200 and second["rows"] == 0
    assert first["fingerprint"] == second["fingerprint"], "same query shape, other literals: one fingerprint"
    assert "'audit'" not in first["normalized"] and "?" in first["normalized"]
    assert refused["status"] == 400 and "system" in refused["error"].lower() and refused["rows"] == 0
    assert refused["fingerprint"] != first["fingerprint"]
    assert all(isinstance(r["duration_ms"], float | int) and r["duration_ms"] >= 0 for r in records)
    assert any(r["endpoint"] == "report:no-such" and r["status"] == 404 for r in records)
    # beta's view holds only beta, and the audit read itself was audited for alpha
    beta_records = json.loads(get(collector.api, "/api/v1/audit", BETA)[2])["records"]
    assert beta_records and {r["tenant"] for r in beta_records} == {"beta"}
    again = json.loads(get(collector.api, "/api/v1/audit", ALPHA)[2])["records"]
    assert again[-1]["endpoint"] == "audit" and again[-1]["rows"] == len(records)
    assert get(collector.api, "/api/v1/audit")[0] == 401
    # the trail on disk names tokens only by id
    trail = (Path(collector.c.config.data_dir) / "audit" / "audit.jsonl").read_text()
    assert ALPHA not in trail and BETA not in trail


# ------------------------------------------------------------------------------------------- TLS / mTLS


def _certs(tmp: Path) -> dict[str, Path]:
    """A CA, a server cert for 127.0.0.1/localhost, a client cert from that CA, and one from another CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)

    def key():
        return ec.generate_private_key(ec.SECP256R1())

    def name(cn: str):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def ca(cn: str):
        k = key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(name(cn))
            .public_key(k.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
            .sign(k, hashes.SHA256())
        )
        return k, cert

    def leaf(cn: str, issuer, issuer_key, server: bool):
        k = key()
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(issuer.subject)
            .public_key(k.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        return k, builder.sign(issuer_key, hashes.SHA256())

    def write(stem: str, k, cert) -> None:
        (tmp / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        if k is not None:
            (tmp / f"{stem}.key").write_bytes(
                k.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
            )

    ca_key, ca_cert = ca("fleetpulse test CA")
    rogue_key, rogue_cert = ca("rogue CA")
    write("ca", None, ca_cert)
    write("server", *leaf("collector", ca_cert, ca_key, True))
    write("client", *leaf("agent", ca_cert, ca_key, False))
    write("rogue", *leaf("agent", rogue_cert, rogue_key, False))
    return {
        n: tmp / n for n in ("ca.crt", "server.crt", "server.key", "client.crt", "client.key", "rogue.crt", "rogue.key")
    }


def _https_post(port: int, certs: dict[str, Path], client: str | None, body: bytes) -> int:
    ctx = ssl.create_default_context(cafile=str(certs["ca.crt"]))
    if client:
        ctx.load_cert_chain(str(certs[f"{client}.crt"]), str(certs[f"{client}.key"]))
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    try:
        headers = {"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {ALPHA}"}
        conn.request("POST", "/v1/metrics", body=body, headers=headers)
        return conn.getresponse().status
    finally:
        conn.close()


def _grpc_export(port: int, certs: dict[str, Path], client: str | None, body: bytes) -> grpc.StatusCode:
    kwargs = {}
    if client:
        kwargs = {
            "private_key": certs[f"{client}.key"].read_bytes(),
            "certificate_chain": certs[f"{client}.crt"].read_bytes(),
        }
    creds = grpc.ssl_channel_credentials(root_certificates=certs["ca.crt"].read_bytes(), **kwargs)
    with grpc.secure_channel(f"127.0.0.1:{port}", creds) as channel:
        try:
            channel.unary_unary(METRICS_PATH)(body, metadata=(("authorization", f"Bearer {ALPHA}"),), timeout=5)
            return grpc.StatusCode.OK
        except grpc.RpcError as exc:
            return exc.code()


@pytest.mark.parametrize("mutual", [False, True], ids=["tls", "mtls"])
def test_tls_and_mtls_on_grpc_http_and_api(store, tmp_path: Path, mutual: bool) -> None:
    certs = _certs(tmp_path)
    config = inprocess_config(tmp_path)
    config.tls.cert_file, config.tls.key_file = str(certs["server.crt"]), str(certs["server.key"])
    if mutual:
        config.tls.client_ca_file = str(certs["ca.crt"])
    c = InProcess(config, store=store)
    body = metrics_request(cluster=f"tls-{mutual}").SerializeToString()
    try:
        # the right client certificate (or none needed) → accepted on both listeners
        assert _https_post(c.http, certs, "client", body) == 200
        assert _grpc_export(c.grpc, certs, "client", body) == grpc.StatusCode.OK
        # plaintext to a TLS port never gets through
        with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
            post(c.http, "/v1/metrics", body, token=ALPHA, timeout=5)
        with grpc.insecure_channel(f"127.0.0.1:{c.grpc}") as channel, pytest.raises(grpc.RpcError):
            channel.unary_unary(METRICS_PATH)(body, metadata=(("authorization", f"Bearer {ALPHA}"),), timeout=3)
        if mutual:
            for client in (None, "rogue"):  # no certificate, or one from another CA → refused
                with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
                    _https_post(c.http, certs, client, body)
                assert _grpc_export(c.grpc, certs, client, body) == grpc.StatusCode.UNAVAILABLE
        else:
            assert _https_post(c.http, certs, None, body) == 200
            assert _grpc_export(c.grpc, certs, None, body) == grpc.StatusCode.OK
        ctx = ssl.create_default_context(cafile=str(certs["ca.crt"]))
        ctx.load_cert_chain(str(certs["client.crt"]), str(certs["client.key"]))

        def api_count() -> int:  # the API port is TLS (and mTLS) too
            conn = http.client.HTTPSConnection("127.0.0.1", c.api, context=ctx, timeout=10)
            sql = quote(f"SELECT count() FROM samples WHERE cluster = 'tls-{mutual}'")
            conn.request("GET", f"/api/v1/query?sql={sql}", headers={"Authorization": f"Bearer {ALPHA}"})
            reply = conn.getresponse()
            assert reply.status == 200
            n = json.loads(reply.read())["rows"][0][0]
            conn.close()
            return n

        stored = (2 if mutual else 4) * 6  # accepted exports x 6 points
        wait_for(lambda: api_count() >= stored, what="TLS exports stored")
        assert api_count() == stored
    finally:
        c.stop()


# ------------------------------------------------------------------------------------------- secrets and redaction


def _agent(tmp: Path, name: str, endpoint: str, extra: str) -> tuple[subprocess.Popen, Path]:
    config = tmp / f"{name}.yaml"
    log = tmp / f"{name}.log"
    config.write_text(
        f"interval_s: 0.2\nsources: []\nprometheus_listen: 127.0.0.1:{free_port()}\n"
        f"buffer: {{dir: '{tmp / (name + '-buffer')}'}}\n{extra}"
    )
    with open(log, "ab") as f:
        proc = subprocess.Popen(
            [sys.executable, "-m", "agent", "--log-level", "debug", "agent", "--config", str(config)],
            stdout=f,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
    return proc, log


def test_secrets_never_reach_logs_metrics_or_error_messages(tmp_path: Path) -> None:
    """A collector with tokens and a DSN password (its store unreachable, so it logs retries), an agent
    sending with a token file (debug logging), and a client presenting a wrong token: no token, no
    password and no presented secret appears in either log, in /metrics or in any answer."""
    dsn_password = "pw-Zq8Lr2Vx"
    wrong_token = "wrong-token-Hk3Jm9"
    collector = CollectorProcess(
        tmp_path,
        f"storage: {{dsn: 'http://fleet:{dsn_password}@127.0.0.1:{free_port()}'}}\n",
        auth=True,
        env={"FLEETPULSE_TOKENS": "env-token-Pw5Ty7=gamma"},
    )
    token_file = tmp_path / "agent.token"
    token_file.write_text(ALPHA + "\n")
    agent = None
    try:
        collector.start().wait_ready(path="/healthz")
        agent, agent_log = _agent(
            tmp_path,
            "agent",
            f"http://127.0.0.1:{collector.http}",
            f"otlp: {{endpoint: 'http://127.0.0.1:{collector.http}', protocol: http/protobuf, token_file: '{token_file}', timeout_s: 2}}\n",
        )
        answers = []
        body = metrics_request(cluster="secrets").SerializeToString()
        answers.append(post(collector.http, "/v1/metrics", body, token=wrong_token))
        answers.append(post(collector.http, "/v1/metrics", body, token=ALPHA))
        answers.append(get(collector.api, "/api/v1/query?sql=SELECT%201", ALPHA))  # 503: store down, names the DSN?
        answers.append(get(collector.api, "/api/v1/query?sql=SELECT%201", wrong_token))
        answers.append(get(collector.api, "/readyz"))
        with grpc.insecure_channel(f"127.0.0.1:{collector.grpc}") as channel, pytest.raises(grpc.RpcError) as err:
            channel.unary_unary(METRICS_PATH)(body, metadata=(("authorization", f"Bearer {wrong_token}"),), timeout=5)
        assert answers[0][0] == 401 and answers[1][0] == 200 and answers[2][0] == 503
        wait_for(lambda: "not reachable" in collector.log.read_text(), what="store retry logged")
        time.sleep(1.5)  # agent cycles and exports a few times
        metrics_page = get(collector.api, "/metrics")[2].decode()
        agent.terminate()
        agent.wait(20)
        assert collector.terminate() == 0
        texts = {
            "collector log": collector.log.read_text(errors="replace"),
            "agent log": agent_log.read_text(errors="replace"),
            "metrics": metrics_page,
            "answers": " ".join(a[2].decode(errors="replace") for a in answers) + err.value.details(),
        }
        assert "fleet:***@" in texts["collector log"] or "127.0.0.1" in texts["collector log"]
        for where, text in texts.items():
            for secret in (dsn_password, ALPHA, BETA, "env-token-Pw5Ty7", wrong_token):
                assert secret not in text, f"{secret!r} leaked into the {where}"
    finally:
        if agent is not None and agent.poll() is None:
            agent.kill()
            agent.wait(10)
        collector.cleanup()


def test_redaction_end_to_end_agent_to_store(collector: InProcess, tmp_path: Path) -> None:
    """An agent configured to drop `rack` and hash `host.name`/`k8s.node.name` sends through the collector:
    the raw values are in no stored row of any table, nor in the collector's WAL."""
    token_file = tmp_path / "token"
    token_file.write_text(ALPHA)
    secret_node, secret_rack = "node-secret-4242", "rack-secret-77"
    agent, _log = _agent(
        tmp_path,
        "redacting",
        "",
        f"otlp: {{endpoint: 'http://127.0.0.1:{collector.grpc}', protocol: grpc, token_file: '{token_file}', timeout_s: 2}}\n"
        f"resource: {{host.name: {secret_node}, k8s.node.name: {secret_node}, rack: {secret_rack}, k8s.cluster.name: redact}}\n"
        "redaction: {drop: [rack], hash: [host.name, k8s.node.name], salt: s4lt}\n",
    )
    try:
        assert collector.wait_count("SELECT count() FROM events WHERE cluster = 'redact'", 1, timeout=30) >= 1
        assert collector.wait_count("SELECT count() FROM samples WHERE cluster = 'redact'", 20, timeout=30) >= 20
        agent.terminate()
        assert agent.wait(20) == 0
        dumps = []
        for table in ("samples", "events", "inventory", "placements"):
            status, _, body = get(
                collector.api, f"/api/v1/query?format=csv&sql=SELECT%20*%20FROM%20{table}&max_rows=100000", ALPHA
            )
            assert status == 200
            dumps.append(body.decode())
        stored = "\n".join(dumps)
        assert "sha256:" in stored  # the hashed node name is what was stored
        assert secret_node not in stored and secret_rack not in stored
        _, body = query(collector.api, "SELECT DISTINCT node FROM samples WHERE cluster = 'redact'", ALPHA)
        assert [r[0][:7] for r in body["rows"]] == ["sha256:"]
        segments = sorted((Path(collector.c.config.data_dir) / "wal").glob("*.wal"))
        # Records as the collector replays them (a gzip body the WAL kept is inflated), plus the raw bytes.
        wal = b"".join(p.read_bytes() for p in segments)
        wal += b"".join(record.message() for p in segments for _, record, _ in scan(p) if record is not None)
        assert secret_node.encode() not in wal and secret_rack.encode() not in wal
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait(10)
