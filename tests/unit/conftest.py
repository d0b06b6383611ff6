"""Fixtures for tests/unit: real OCI registries (Debian's docker-registry) on 127.0.0.1, see tests/ociregistry.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.ociregistry import FaultProxy, Registry, TokenServer, ensure_registry_packages


@pytest.fixture(scope="session")
def registry(tmp_path_factory) -> Iterator[Registry]:
    """A plain (no auth) registry."""
    ensure_registry_packages()
    reg = Registry(tmp_path_factory.mktemp("registry-plain"))
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def registry_htpasswd(tmp_path_factory) -> Iterator[Registry]:
    """A registry with htpasswd (bcrypt) Basic auth: tests.ociregistry.USER / PASSWORD."""
    ensure_registry_packages()
    reg = Registry(tmp_path_factory.mktemp("registry-htpasswd"), auth="htpasswd")
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def token_server(tmp_path_factory) -> Iterator[TokenServer]:
    server = TokenServer(tmp_path_factory.mktemp("token-server"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def registry_token(tmp_path_factory, token_server) -> Iterator[Registry]:
    """A registry with token auth backed by token_server (Bearer challenge, ES256 JWTs)."""
    ensure_registry_packages()
    reg = Registry(tmp_path_factory.mktemp("registry-token"), auth="token", token_realm=token_server.realm,
                   token_cert=token_server.cert_pem)
    yield reg
    reg.stop()


@pytest.fixture
def fault_proxy(registry) -> Iterator[FaultProxy]:
    """A proxy in front of the plain registry that injects failures on demand."""
    proxy = FaultProxy(registry.host)
    yield proxy
    proxy.stop()
