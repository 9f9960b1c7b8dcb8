"""Bearer tokens → tenants, TLS contexts, and the loopback-only rule for ``auth: none``.

The tenant always comes from the token (or is ``default`` without auth), never from the payload.
Tokens are compared with ``hmac.compare_digest`` against every configured token, so timing says
nothing about which token (or prefix) was close.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import ssl
from pathlib import Path

import yaml

DEFAULT_TENANT = "default"
TOKENS_ENV = "FLEETPULSE_TOKENS"


class AuthConfigError(ValueError):
    pass


def parse_tokens_env(value: str) -> dict[str, str]:
    """``tok1=tenantA,tok2=tenantB`` → {token: tenant}."""
    tokens = {}
    for part in filter(None, (p.strip() for p in value.split(","))):
        token, sep, tenant = part.partition("=")
        if not sep or not token.strip() or not tenant.strip():
            raise AuthConfigError(f"{TOKENS_ENV}: expected token=tenant[,token=tenant...], got entry {part!r}")
        tokens[token.strip()] = tenant.strip()
    return tokens


def load_tokens_file(path: str) -> dict[str, str]:
    """A YAML mapping ``token: tenant`` (plain ``token: tenant`` lines are exactly that)."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise AuthConfigError(f"auth.tokens_file {path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise AuthConfigError(f"auth.tokens_file {path}: not valid YAML ('token: tenant' per line): {exc}") from None
    if not isinstance(data, dict) or not data:
        raise AuthConfigError(f"auth.tokens_file {path}: expected 'token: tenant' lines, got {type(data).__name__}")
    tokens = {}
    for token, tenant in data.items():
        if not isinstance(tenant, str | int) or not str(token).strip() or not str(tenant).strip():
            raise AuthConfigError(f"auth.tokens_file {path}: entry {token!r}: expected 'token: tenant', got {tenant!r}")
        tokens[str(token)] = str(tenant)
    return tokens


class Authenticator:
    """``tenant_for(authorization_header)`` → tenant, or None when the request must get 401."""

    def __init__(self, mode: str, tokens: dict[str, str] | None = None) -> None:
        if mode not in ("none", "tokens"):
            raise AuthConfigError(f"auth.mode: expected 'none' or 'tokens', got {mode!r}")
        if mode == "tokens" and not tokens:
            raise AuthConfigError(
                "auth.mode is 'tokens' but no tokens are configured (auth.tokens_file or FLEETPULSE_TOKENS)"
            )
        self.mode = mode
        self._tokens = [(t.encode(), tenant) for t, tenant in (tokens or {}).items()]

    @classmethod
    def from_config(cls, mode: str, tokens_file: str | None) -> Authenticator:
        tokens: dict[str, str] = {}
        if mode == "tokens":
            if tokens_file:
                tokens.update(load_tokens_file(tokens_file))
            env = os.environ.get(TOKENS_ENV)
            if env:
                tokens.update(parse_tokens_env(env))
        return cls(mode, tokens)

    def tenant_for(self, authorization: str | None) -> str | None:
        if self.mode == "none":
            return DEFAULT_TENANT
        if not authorization:
            return None
        scheme, _, presented = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not presented:
            return None
        candidate = presented.strip().encode()
        found = None
        for token, tenant in self._tokens:  # no early exit: every token is compared
            if hmac.compare_digest(candidate, token):
                found = tenant
        return found


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(mode: str, listens: dict[str, tuple[str, int]]) -> None:
    """``auth: none`` serves anyone who can connect, so it may only listen on loopback."""
    if mode != "none":
        return
    exposed = {name: host for name, (host, _) in listens.items() if not is_loopback(host)}
    if exposed:
        raise AuthConfigError(
            f"auth.mode 'none' only binds loopback, but {', '.join(f'{k}={v}' for k, v in exposed.items())}; "
            "set auth.mode: tokens (with auth.tokens_file) or listen on 127.0.0.1"
        )


def server_ssl_context(cert_file: str, key_file: str, client_ca_file: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert_file, key_file)
    if client_ca_file:
        ctx.load_verify_locations(client_ca_file)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def grpc_server_credentials(cert_file: str, key_file: str, client_ca_file: str | None):
    import grpc

    pair = [(Path(key_file).read_bytes(), Path(cert_file).read_bytes())]
    if client_ca_file:
        return grpc.ssl_server_credentials(
            pair, root_certificates=Path(client_ca_file).read_bytes(), require_client_auth=True
        )
    return grpc.ssl_server_credentials(pair)
