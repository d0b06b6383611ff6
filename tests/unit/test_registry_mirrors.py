"""Registry failover through the init's plan-mode code against real registries on 127.0.0.1: a mirror killed
mid-download of the kernel (the pull resumes on the next mirror with Range, same digest, the switch logged),
plan-level mirrors, a mirror serving tampered bytes, DNS SRV names resolved by a DNS server we run, and the
separate metadata/Keystone timeouts."""

from __future__ import annotations

import hashlib
import os
import socket
import time
from pathlib import Path

import pytest

from cloudboot.cli import main
from cloudboot.init import planmode
from cloudboot.init.main import lldp_default_name
from cloudboot.registry.local import free_port, serving
from oci.srv import Resolver
from tests.dnsserver import DnsServer
from tests.ociregistry import CuttingProxy

KERNEL_SIZE = 24 << 20


@pytest.fixture(scope="module")
def kernel(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("mirrors") / "vmlinuz"
    path.write_bytes(os.urandom(KERNEL_SIZE))
    return path


@pytest.fixture
def second(tmp_path):
    with serving(tmp_path / "registry-a") as reg:
        yield reg


def push(*argv: str) -> str:
    assert main(["push", *map(str, argv)]) == 0


def publish(host: str, kernel: Path, plan_text: str, tmp_path: Path, repo: str) -> None:
    """The same artifact (same digests) and plan on `host`."""
    push("artifact", f"{host}/{repo}/kernel:1", "--platform", "linux/amd64", "--kernel", kernel,
         "--cmdline", "console=ttyS0")
    plan = tmp_path / "plan.hcl"
    plan.write_text(plan_text)
    push("plan", f"{host}/{repo}/plan:1", plan)


def sha(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_mirror_killed_mid_download_resumes_on_the_next(registry, second, kernel, tmp_path, capsys) -> None:
    proxy = CuttingProxy(second.host, cut_after=KERNEL_SIZE // 3, on_cut=second.kill)
    try:
        plan = f'default_target = "k"\ntarget "k" {{\n  kernel = "{proxy.host}/mirr1/kernel:1"\n}}\n'
        for host in (second.host, registry.host):
            publish(host, kernel, plan, tmp_path, "mirr1")
        capsys.readouterr()
        work = tmp_path / "run"
        work.mkdir()
        t = planmode.run({"cloudboot.plan": f"{proxy.host}/mirr1/plan:1",
                          "cloudboot.registry.mirror": registry.host}, str(work))
        out = capsys.readouterr().out
    finally:
        proxy.stop()
    assert proxy.cut.is_set()
    assert sha(t.kernel) == hashlib.sha256(kernel.read_bytes()).hexdigest()
    assert f"registry: {proxy.host} failed (" in out and f"trying {registry.host}" in out, out
    assert f"from {registry.host}" in out and "resuming sha256:" in out, out  # Range, not a fresh download
    assert t.cmdline == "console=ttyS0"


def test_plan_mirrors_serve_a_dead_registrys_refs(registry, kernel, tmp_path, capsys) -> None:
    dead = f"127.0.0.1:{free_port()}"
    plan = (f'default_target = "k"\nmirrors = ["{registry.host}"]\n'
            f'target "k" {{\n  kernel = "{dead}/mirr2/kernel:1"\n}}\n')
    publish(registry.host, kernel, plan, tmp_path, "mirr2")
    capsys.readouterr()
    work = tmp_path / "run"
    work.mkdir()
    t = planmode.run({"cloudboot.plan": f"{registry.host}/mirr2/plan:1"}, str(work))
    out = capsys.readouterr().out
    assert sha(t.kernel) == hashlib.sha256(kernel.read_bytes()).hexdigest()
    assert f"plan: registry mirrors {registry.host}" in out
    assert f"registry: {dead} failed (" in out and f"trying {registry.host}" in out, out


def test_tampering_mirror_cannot_change_the_kernel(registry, second, kernel, tmp_path, capsys) -> None:
    plan = f'default_target = "k"\ntarget "k" {{\n  kernel = "{second.host}/mirr3/kernel:1"\n}}\n'
    for host in (second.host, registry.host):
        publish(host, kernel, plan, tmp_path, "mirr3")
    digest = "sha256:" + hashlib.sha256(kernel.read_bytes()).hexdigest()
    blob = second.blob_path(digest)
    blob.write_bytes(os.urandom(KERNEL_SIZE))  # same size, other bytes
    capsys.readouterr()
    work = tmp_path / "run"
    work.mkdir()
    t = planmode.run({"cloudboot.plan": f"{second.host}/mirr3/plan:1",
                      "cloudboot.registry.mirror": registry.host}, str(work))
    out = capsys.readouterr().out
    assert "sha256:" + sha(t.kernel) == digest
    assert "digest mismatch" in out and f"served by {second.host}" in out and f"trying {registry.host}" in out


def test_srv_name_resolved_once_in_priority_order(registry, kernel, tmp_path, capsys) -> None:
    name = "_oci._tcp.cloudboot.test"
    dead_port = free_port()
    dns = DnsServer()
    try:
        dns.srv[name] = [(20, 0, registry.port, "127.0.0.1"), (10, 5, dead_port, "127.0.0.1")]
        plan = f'default_target = "k"\ntarget "k" {{\n  kernel = "{name}/mirr4/kernel:1"\n}}\n'
        publish(registry.host, kernel, plan, tmp_path, "mirr4")
        capsys.readouterr()
        work = tmp_path / "run"
        work.mkdir()
        t = planmode.run({"cloudboot.plan": f"{name}/mirr4/plan:1"}, str(work),
                         resolver=Resolver([dns.address], timeout=2.0))
        out = capsys.readouterr().out
    finally:
        dns.stop()
    assert sha(t.kernel) == hashlib.sha256(kernel.read_bytes()).hexdigest()
    assert f"registry: {name} -> 127.0.0.1:{dead_port}, 127.0.0.1:{registry.port} (DNS SRV)" in out, out
    assert f"registry: 127.0.0.1:{dead_port} failed (" in out and f"trying 127.0.0.1:{registry.port}" in out
    assert [q for q in dns.queries if q[0] == name] == [(name, 33, "udp")]  # cached for the boot


def test_srv_truncated_answer_goes_over_tcp_and_errors_are_one_line() -> None:
    dns = DnsServer()
    try:
        dns.srv["_oci._tcp.big.test"] = [(0, 1, 5000 + i, f"reg{i}.big.test") for i in range(3)]
        dns.truncate_udp = True
        got = Resolver([dns.address]).srv("_oci._tcp.big.test", rand=lambda n: 0)
        assert got == [("reg0.big.test", 5000), ("reg1.big.test", 5001), ("reg2.big.test", 5002)]
        assert [p for _, _, p in dns.queries] == ["udp", "tcp"]
        with pytest.raises(Exception, match="NXDOMAIN"):
            Resolver([dns.address]).srv("_oci._tcp.nowhere.test")
    finally:
        dns.stop()
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        with pytest.raises(Exception, match=r"cannot resolve _oci._tcp.x.test: 127.0.0.1:\d+: timed out"):
            Resolver([silent.getsockname()], timeout=0.3, attempts=1).srv("_oci._tcp.x.test")
    finally:
        silent.close()


def test_srv_bad_name_fails_the_init_with_one_line(tmp_path) -> None:
    from cloudboot.init.errors import InitError

    dns = DnsServer()
    try:
        with pytest.raises(InitError, match=r"registry: DNS: _oci._tcp.gone.test: no such name \(NXDOMAIN\)"):
            planmode.run({"cloudboot.plan": "_oci._tcp.gone.test/boot/plan:1"}, str(tmp_path),
                         resolver=Resolver([dns.address]))
    finally:
        dns.stop()


@pytest.fixture
def hanging():
    """A TCP port that accepts connections (the kernel's backlog) and never answers."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    yield f"127.0.0.1:{s.getsockname()[1]}"
    s.close()


def test_metadata_and_keystone_have_their_own_timeouts(hanging, capsys) -> None:
    source = planmode.metadata_source({"cloudboot.metadata.url": f"http://{hanging}/meta.json"})
    start = time.monotonic()
    assert source.fetch_or_fallback() == {}
    took = time.monotonic() - start
    assert 9 <= took < 30, took  # 10 s, not the registry's 60 s (and no retry after the budget)
    assert "continuing with the command line" in capsys.readouterr().out
    source = planmode.metadata_source({"cloudboot.metadata.url": f"http://{hanging}/meta.json",
                                       "cloudboot.openstack.auth-url": f"http://{hanging}/v3",
                                       "cloudboot.openstack.app-cred-id": "i",
                                       "cloudboot.openstack.app-cred-secret": "s"})
    start = time.monotonic()
    assert source.fetch_or_fallback() == {}
    took = time.monotonic() - start
    assert 14 <= took < 40, took  # Keystone's 15 s
    assert "auth/tokens" in capsys.readouterr().out
    assert (source.fetcher.transport.timeout, source.keystone_fetcher.transport.timeout) == (10.0, 15.0)
    session = planmode.Session({}, "amd64")
    assert session.transport.timeout == 60.0


def test_lldp_default_name_is_the_go_arch() -> None:
    assert lldp_default_name("x86_64") == "cloud-boot-amd64"
    assert lldp_default_name("aarch64") == "cloud-boot-arm64"
    assert lldp_default_name("loongarch64") == "cloud-boot-loong64"
    assert lldp_default_name("s390x") == "cloud-boot-s390x"


def test_mirror_key_checked_up_front() -> None:
    from bootplan.cmdline import check

    good, bad, unknown = check({"cloudboot.registry.mirror": "a.example:5000,http://127.0.0.1:5001"})
    assert not bad and not unknown
    _, bad, _ = check({"cloudboot.registry.mirror": "a.example/path"})
    assert bad and "bad registry mirror 'a.example/path'" in bad[0]
    _, bad, _ = check({"cloudboot.registry.mirror": ","})
    assert bad and "empty mirror list" in bad[0]


def test_plan_mirrors_checked_with_the_line(tmp_path, capsys) -> None:
    plan = tmp_path / "p.hcl"
    plan.write_text('default_target = "k"\n\nmirrors = ["ok.example", "bad host"]\n'
                    'target "k" {\n  kernel = "r.example/k:1"\n}\n')
    assert main(["plan", "check", str(plan)]) == 1
    err = capsys.readouterr().err
    assert "p.hcl:3" in err and "bad registry" in err, err
