"""Fixtures for tests/unit: real OCI registries (Debian's docker-registry) on 127.0.0.1, see tests/ociregistry.py;
the plain `registry` fixture is in tests/conftest.py (the e2e tests use it too)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cloudboot.registry.local import Registry, serving
from tests.ociregistry import FaultProxy, TokenServer


@pytest.fixture(scope="session")
def registry_htpasswd(tmp_path_factory) -> Iterator[Registry]:
    """A registry with htpasswd (bcrypt) Basic auth: tests.ociregistry.USER / PASSWORD."""
    with serving(tmp_path_factory.mktemp("registry-htpasswd"), auth="htpasswd") as reg:
        yield reg


@pytest.fixture(scope="session")
def token_server(tmp_path_factory) -> Iterator[TokenServer]:
    server = TokenServer(tmp_path_factory.mktemp("token-server"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def registry_token(tmp_path_factory, token_server) -> Iterator[Registry]:
    """A registry with token auth backed by token_server (Bearer challenge, ES256 JWTs)."""
    with serving(tmp_path_factory.mktemp("registry-token"), auth="token", token_realm=token_server.realm,
                 token_cert=token_server.cert_pem) as reg:
        yield reg


@pytest.fixture
def fault_proxy(registry) -> Iterator[FaultProxy]:
    """A proxy in front of the plain registry that injects failures on demand."""
    proxy = FaultProxy(registry.host)
    yield proxy
    proxy.stop()


@pytest.fixture(scope="session")
def diskimages(testdata: str):
    """qcow2 and UDIF images made by qemu-img, pydmg and tests/udifwrite.py (tests/diskimages.py)."""
    from tests.diskimages import build

    return build(testdata)


@pytest.fixture
def kexec_calls(monkeypatch):
    """`refuse(load=errno or None, file=errno or None)`: fakes both kexec syscalls, which record their call
    (kexec_file_load: ("file", the kernel's first 4 bytes); kexec_load: ("load", entry, segments, flags)) and
    then fail with the errno given; returns the records, in call order."""
    import os

    from cloudboot.init import linux

    def refuse(load: int | None = None, file: int | None = None) -> list:
        calls: list = []

        def fail(err: int | None) -> None:
            if err is not None:
                raise OSError(err, os.strerror(err))

        def file_load(kfd, ifd, cmdline):
            with open(f"/proc/self/fd/{kfd}", "rb") as f:
                calls.append(("file", f.read(4)))
            fail(file)

        def kexec_load(entry, segs, flags):
            calls.append(("load", entry, segs, flags))
            fail(load)

        monkeypatch.setattr(linux, "kexec_file_load", file_load)
        monkeypatch.setattr(linux, "kexec_load", kexec_load)
        return calls

    return refuse


@pytest.fixture
def kexec_without_file_load(kexec_calls) -> list:
    """A kernel without kexec_file_load (ENOSYS) whose kexec_load succeeds: the records of kexec_calls."""
    import errno

    return kexec_calls(file=errno.ENOSYS)
