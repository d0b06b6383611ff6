"""Push and pull against Debian's real docker-registry: round trips, multi-arch, auth (htpasswd, token), and the
distinct failures (401, 404, 5xx, digest mismatch, oversize, timeouts)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import threading
from pathlib import Path

import pytest

import oci
from cloudboot.cli import main
from cloudboot.registry.local import PASSWORD, USER
from oci.client import Client, sha256_digest
from oci.errors import AuthError, DigestMismatch, NotFound, ServerError, TooLarge, TransportError
from oci.hash_cpython import BackgroundSha256
from oci.pull import first_layer, resolve_verified
from oci.ref import parse
from oci.transport_cpython import Transport

PLAN = """
default_target = "prod"
target "prod" {
  arch   = "amd64"
  kernel = "127.0.0.1:5000/boot/kernel:6.12"
  cmdline = ["console=ttyS0", "quiet"]
}
"""


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out.strip(), err.strip()


def client(**kw) -> Client:
    return Client(Transport(timeout=kw.pop("timeout", 10)), sleep=lambda s: None, **kw)


@pytest.fixture
def payloads(tmp_path: Path) -> dict[str, Path]:
    files = {}
    for name, size in (("vmlinuz-6.12.0-amd64", 3 << 20), ("initrd.img-6.12.0", 1 << 20), ("mods.cpio.gz", 1000)):
        files[name] = tmp_path / name
        files[name].write_bytes(os.urandom(size))
    return files


def test_artifact_round_trip(registry, payloads, tmp_path, capsys) -> None:
    ref = f"{registry.host}/boot/kernel:6.12"
    k, i, m = payloads.values()
    code, out, err = cli(capsys, "push", "artifact", ref, "--platform", "linux/amd64", "--kernel", k, "--initrd", i,
                         "--modules", m, "--cmdline", "console=ttyS0 quiet")
    assert code == 0, err
    assert out.startswith(ref + "@sha256:")
    pushed_digest = out.rsplit("@", 1)[1]

    c = client()
    manifest, pinned, top, verified = resolve_verified(c, parse(ref), "linux", "amd64")
    assert pinned.digest == top == pushed_digest and verified is False
    raw, media_type, _ = c.get_manifest(pinned)
    assert media_type == oci.MT_OCI_MANIFEST and sha256_digest(raw) == pushed_digest
    assert "artifactType" not in manifest and "annotations" not in manifest and "subject" not in manifest
    assert manifest["config"]["mediaType"] == oci.MT_CONFIG
    assert c.fetch_blob_bytes(pinned, manifest["config"]["digest"]) == \
        b'{"architecture":"amd64","created":null,"os":"linux"}'
    layers = manifest["layers"]
    assert [(x["mediaType"], x["annotations"]) for x in layers] == [
        (oci.MT_KERNEL, {oci.ANN_TITLE: "vmlinuz", oci.ANN_SOURCE_BASENAME: k.name}),
        (oci.MT_INITRD, {oci.ANN_TITLE: "initrd", oci.ANN_SOURCE_BASENAME: i.name}),
        (oci.MT_MODULES, {oci.ANN_TITLE: "modules", oci.ANN_SOURCE_BASENAME: m.name}),
        (oci.MT_CMDLINE, {oci.ANN_TITLE: "cmdline"})]
    for layer, src in zip(layers, (k, i, m), strict=False):
        out_path = tmp_path / ("pulled-" + src.name)
        c.fetch_blob_to_path(pinned, layer["digest"], str(out_path), size=layer["size"])
        assert out_path.read_bytes() == src.read_bytes()
        assert layer["digest"] == sha256_digest(src.read_bytes())
    assert c.fetch_blob_bytes(pinned, first_layer(manifest, oci.MT_CMDLINE)["digest"]) == b"console=ttyS0 quiet"

    # the CLI pull gives the same bytes
    code, out, err = cli(capsys, "pull", ref, "-d", tmp_path / "cli", "--json")
    assert code == 0, err
    assert json.loads(out)["files"] == ["vmlinuz", "initrd", "modules", "cmdline"]
    assert (tmp_path / "cli/vmlinuz").read_bytes() == k.read_bytes()

    # pushing the same thing again uploads nothing new and gives the same digest
    code, out2, _ = cli(capsys, "push", "artifact", ref, "--platform", "linux/amd64", "--kernel", k, "--initrd", i,
                        "--modules", m, "--cmdline", "console=ttyS0 quiet")
    assert out2.rsplit("@", 1)[1] == pushed_digest


def test_plan_push_has_hcl_and_parsed_layers(registry, tmp_path, capsys) -> None:
    from bootplan import plan as bootplan

    plan = tmp_path / "prod.hcl"
    plan.write_text(PLAN)
    ref = f"{registry.host}/plans/prod:v1"
    code, out, err = cli(capsys, "push", "plan", ref, plan)
    assert code == 0, err
    c = client()
    manifest, pinned, _, _ = resolve_verified(c, parse(ref), "linux", "arm64")
    assert c.fetch_blob_bytes(pinned, manifest["config"]["digest"]) == b'{"created":null}'
    hcl_layer = first_layer(manifest, oci.MT_PLAN)
    assert hcl_layer["annotations"] == {oci.ANN_TITLE: "prod.hcl"}
    assert c.fetch_blob_bytes(pinned, hcl_layer["digest"]) == PLAN.encode()
    parsed = json.loads(c.fetch_blob_bytes(pinned, first_layer(manifest, oci.MT_PLAN_JSON)["digest"]))
    assert parsed == json.loads(json.dumps(bootplan.load(PLAN, "prod.hcl")))  # what the firmware evaluates

    bad = tmp_path / "bad.hcl"
    bad.write_text('target "x" {\n  kernel = \n')
    code, _, err = cli(capsys, "push", "plan", ref, bad)
    assert code == 1 and err.startswith("cloud-boot: error: not pushing an invalid plan: bad.hcl:") and "\n" not in err


def test_multi_arch_index(registry, tmp_path, capsys) -> None:
    arches = ["amd64", "arm64", "riscv64", "loong64"]
    entries = []
    for arch in arches:
        k = tmp_path / f"vmlinuz-{arch}"
        k.write_bytes(f"kernel for {arch}".encode() * 100)
        # per-arch manifests in another repository: push index copies them into the index's repository
        child = f"{registry.host}/build/kernel:{arch}"
        assert cli(capsys, "push", "artifact", child, "--platform", f"linux/{arch}", "--kernel", k)[0] == 0
        entries += ["-p", f"linux/{arch}={child}"]
    ref = f"{registry.host}/boot/multi:6.12"
    code, out, err = cli(capsys, "push", "index", ref, *entries)
    assert code == 0, err
    c = client()
    raw, media_type, digest = c.get_manifest(parse(ref))
    assert media_type == oci.MT_OCI_INDEX and out.endswith("@" + digest)
    assert [m["platform"] for m in json.loads(raw)["manifests"]] == [{"architecture": a, "os": "linux"}
                                                                     for a in arches]
    for arch, machine in zip(arches, ["x86_64", "aarch64", "riscv64", "loongarch64"], strict=True):
        manifest, pinned, _, _ = resolve_verified(c, parse(ref), "linux", machine)
        data = c.fetch_blob_bytes(pinned, first_layer(manifest, oci.MT_KERNEL)["digest"])
        assert data == f"kernel for {arch}".encode() * 100
    code, _, err = cli(capsys, "pull", ref, "-d", tmp_path / "x", "--platform", "windows/x86_64")
    assert code == 1 and "no manifest in index for windows/amd64" in err
    code, _, err = cli(capsys, "pull", ref, "-d", tmp_path / "x", "--platform", "linux/s390x")
    assert code == 2 and err.startswith("cloud-boot: error: argument --platform: unknown architecture 's390x'")


def test_htpasswd_auth(registry_htpasswd, payloads, tmp_path, capsys, monkeypatch) -> None:
    ref = f"{registry_htpasswd.host}/secure/kernel:1"
    k = next(iter(payloads.values()))
    code, _, err = cli(capsys, "push", "artifact", ref, "--platform", "linux/amd64", "--kernel", k)
    assert code == 1 and "wants credentials" in err
    code, _, err = cli(capsys, "push", "artifact", ref, "--platform", "linux/amd64", "--kernel", k,
                       "--username", USER, "--password", "wrong")
    assert code == 1 and "401 Unauthorized" in err
    code, out, err = cli(capsys, "push", "artifact", ref, "--platform", "linux/amd64", "--kernel", k,
                         "--username", USER, "--password", PASSWORD)
    assert code == 0, err
    # environment
    monkeypatch.setenv("REGISTRY_USERNAME", USER)
    monkeypatch.setenv("REGISTRY_PASSWORD", PASSWORD)
    assert cli(capsys, "pull", ref, "-d", tmp_path / "env")[0] == 0
    monkeypatch.delenv("REGISTRY_USERNAME")
    monkeypatch.delenv("REGISTRY_PASSWORD")
    # docker config file
    (tmp_path / "docker").mkdir()
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (tmp_path / "docker/config.json").write_text(json.dumps({"auths": {registry_htpasswd.host: {"auth": auth}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    code, _, err = cli(capsys, "pull", ref, "-d", tmp_path / "cfg")
    assert code == 0, err
    assert (tmp_path / "cfg/vmlinuz").read_bytes() == k.read_bytes()


def test_token_auth_reuses_tokens(registry_token, token_server, payloads, tmp_path) -> None:
    from cloudboot.registry.push import push_artifact

    ref = parse(f"{registry_token.host}/tok/kernel:1")
    anonymous = client()
    with pytest.raises(AuthError, match="token server .* refused"):
        anonymous.get_manifest(ref)
    c = client(credentials=lambda registry: (USER, PASSWORD))
    k = next(iter(payloads.values()))
    before = token_server.issued
    digest = push_artifact(c, ref, "linux/amd64", {"kernel": k})
    manifest, _, _, pinned = c.resolve(ref)
    assert c.fetch_blob_bytes(pinned, manifest["layers"][0]["digest"], max_size=8 << 20) == k.read_bytes()
    assert pinned.digest == digest
    # push (pull,push scope) and pull: a handful of token fetches, not one per request
    assert 1 <= token_server.issued - before <= 3


def test_distinct_errors(registry, fault_proxy, payloads, tmp_path, capsys) -> None:
    k = next(iter(payloads.values()))
    ref = f"{registry.host}/errs/kernel:1"
    assert cli(capsys, "push", "artifact", ref, "--platform", "linux/amd64", "--kernel", k)[0] == 0
    c = client()
    manifest, _, _, pinned = c.resolve(parse(ref))
    layer = manifest["layers"][0]

    with pytest.raises(NotFound, match="404 not found .MANIFEST_UNKNOWN"):
        c.get_manifest(parse(f"{registry.host}/errs/kernel:nope"))
    with pytest.raises(NotFound, match="BLOB_UNKNOWN"):
        c.fetch_blob_bytes(pinned, "sha256:" + "0" * 64)
    with pytest.raises(TooLarge, match="over the 1024 byte cap"):
        c.fetch_blob_bytes(pinned, layer["digest"], max_size=1024)

    # 5xx: retried, then success; persistent: ServerError naming the status
    via = parse(f"{fault_proxy.host}/errs/kernel:1")
    fault_proxy.fail, fault_proxy.status, fault_proxy.match = 2, 503, "/manifests/"
    assert c.get_manifest(via)[2] == pinned.digest
    fault_proxy.fail = 10
    with pytest.raises(ServerError, match="registry error 503 after 4 attempts"):
        c.get_manifest(via)
    # timeouts: retried, then TransportError
    fault_proxy.fail, fault_proxy.hang, fault_proxy.status = 10, 1.0, 200
    fast = Client(Transport(timeout=0.3), retries=1, sleep=lambda s: None)
    with pytest.raises(TransportError, match="after 2 attempts"):
        fast.get_manifest(via)
    fault_proxy.fail, fault_proxy.hang = 0, 0.0

    # CLI: one line each, distinct
    messages = set()
    for argv in (["pull", f"{registry.host}/errs/kernel:nope", "-d", tmp_path / "a"],
                 ["pull", ref, "-d", tmp_path / "b", "--max-size", "100"]):
        code, _, err = cli(capsys, *argv)
        assert code == 1 and "\n" not in err and "Traceback" not in err
        messages.add(err)
    assert len(messages) == 2


def test_tampered_blob_is_never_used(registry, payloads, tmp_path, capsys) -> None:
    k = next(iter(payloads.values()))
    ref = f"{registry.host}/tamper/kernel:1"
    assert cli(capsys, "push", "artifact", ref, "--platform", "linux/amd64", "--kernel", k)[0] == 0
    c = client()
    manifest, _, _, pinned = c.resolve(parse(ref))
    layer = manifest["layers"][0]
    blob = registry.blob_path(layer["digest"])
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    target = tmp_path / "vmlinuz"
    with pytest.raises(DigestMismatch, match="digest mismatch"):
        c.fetch_blob_to_path(pinned, layer["digest"], str(target), size=layer["size"])
    assert not target.exists() and not (tmp_path / "vmlinuz.part").exists()
    code, _, err = cli(capsys, "pull", ref, "-d", tmp_path / "cli")
    assert code == 1 and "blob digest mismatch" in err
    assert not (tmp_path / "cli/vmlinuz").exists()


def test_modpack(registry, tmp_path, capsys) -> None:
    src = tmp_path / "lib/modules/6.12.0-test"
    (src / "kernel/drivers/net").mkdir(parents=True)
    (src / "kernel/drivers/net/virtio_net.ko").write_bytes(b"\x7fELF fake module")
    (src / "modules.dep").write_text("kernel/drivers/net/virtio_net.ko:\n")
    (src / "build").symlink_to("/usr/src/linux-headers-6.12.0-test")
    out = tmp_path / "mods.cpio.gz"
    code, printed, err = cli(capsys, "push", "modpack", src, "-o", out,
                             "--push", f"{registry.host}/boot/modules:6.12.0-test")
    assert code == 0, err
    assert printed.startswith(f"{registry.host}/boot/modules:6.12.0-test@sha256:")
    listing = subprocess.run(["sh", "-c", f"zcat {out} | cpio -t --quiet"], capture_output=True, text=True,
                             check=True).stdout.split()
    assert listing[:3] == ["lib", "lib/modules", "lib/modules/6.12.0-test"]
    assert sorted(listing) == ["lib", "lib/modules", "lib/modules/6.12.0-test", "lib/modules/6.12.0-test/build",
                       "lib/modules/6.12.0-test/kernel", "lib/modules/6.12.0-test/kernel/drivers",
                       "lib/modules/6.12.0-test/kernel/drivers/net",
                       "lib/modules/6.12.0-test/kernel/drivers/net/virtio_net.ko",
                       "lib/modules/6.12.0-test/modules.dep"]
    c = client()
    manifest, _, _, pinned = c.resolve(parse(printed))
    assert c.fetch_blob_bytes(pinned, first_layer(manifest, oci.MT_MODULES)["digest"]) == out.read_bytes()


def test_push_multi_pushes_each_platform_and_the_index(registry, tmp_path, capsys) -> None:
    amd, arm, rd = (tmp_path / n for n in ("vmlinuz-amd64", "Image-arm64", "initrd-amd64"))
    for p in (amd, arm, rd):
        p.write_bytes(os.urandom(100_000))
    ref = f"{registry.host}/boot/multi:6.12"
    code, out, err = cli(capsys, "push", "multi", ref, "--kernel", f"linux/x86_64={amd}", "-k", f"linux/aarch64={arm}",
                         "-i", f"linux/amd64={rd}", "--cmdline", "console=ttyS0", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert [(m["platform"], m["ref"].split("@")[0]) for m in doc["manifests"]] == [
        ("linux/amd64", f"{ref}-amd64"), ("linux/arm64", f"{ref}-arm64")]
    c = client()
    raw, media_type, digest = c.get_manifest(parse(ref))
    assert digest == doc["digest"] and media_type == oci.MT_OCI_INDEX
    index = json.loads(raw)
    assert [(m["platform"]["architecture"], m["digest"]) for m in index["manifests"]] == [
        ("amd64", doc["manifests"][0]["digest"]), ("arm64", doc["manifests"][1]["digest"])]
    for arch, files in (("arm64", [arm]), ("amd64", [amd, rd])):
        manifest, pinned, _, _ = resolve_verified(c, parse(ref), "linux", arch)
        layers = [lz for lz in manifest["layers"] if lz["mediaType"] != oci.MT_CMDLINE]
        assert [lz["digest"] for lz in layers] == [sha256_digest(f.read_bytes()) for f in files]
        assert c.fetch_blob_bytes(pinned, layers[0]["digest"]) == files[0].read_bytes()
    code, out, err = cli(capsys, "push", "multi", ref, "--kernel", f"linux/amd64={tmp_path / 'nope'}")
    assert code == 1 and err == f"cloud-boot: error: push multi: --kernel linux/amd64={tmp_path / 'nope'}: no such file"
    code, out, err = cli(capsys, "push", "multi", ref, "--kernel", "amd64")
    assert code == 2 and "want os/arch=FILE" in err
    code, out, err = cli(capsys, "push", "multi", ref)
    assert code == 1 and "give at least one" in err


def test_background_sha256_matches_hashlib_and_ends_its_thread() -> None:
    """The blob hash the init and the CLI compute beside the download: the same digest for chunks whose buffer
    the caller reuses at once, and no thread left behind, also when a download is abandoned."""
    data = os.urandom(5 << 20)
    h, buf = BackgroundSha256(), bytearray(1 << 20)
    for off in range(0, len(data), len(buf) - 7):  # odd sizes, one buffer, refilled right after update
        n = len(data[off:off + len(buf) - 7])
        buf[:n] = data[off:off + n]
        h.update(memoryview(buf)[:n])
        buf[:n] = bytes(n)
    assert h.hexdigest() == hashlib.sha256(data).hexdigest() and h.digest() == hashlib.sha256(data).digest()
    with pytest.raises(ValueError, match="after close"):
        h.update(b"x")
    abandoned = BackgroundSha256()
    abandoned.update(data)
    abandoned.close()
    assert not _hashing_threads()


def test_fetch_blob_hashes_beside_the_download(registry, payloads, tmp_path, capsys) -> None:
    """The client with BackgroundSha256 (as the init and the CLI build it): a verified blob arrives, a tampered
    one is refused, and no hashing thread outlives either download."""
    k = payloads["vmlinuz-6.12.0-amd64"]
    ref = f"{registry.host}/bghash/kernel:1"
    assert cli(capsys, "push", "artifact", ref, "--platform", "linux/amd64", "--kernel", k)[0] == 0
    c = client(sha256=BackgroundSha256)
    manifest, _, _, pinned = c.resolve(parse(ref))
    layer = manifest["layers"][0]
    c.fetch_blob_to_path(pinned, layer["digest"], str(tmp_path / "k"), size=layer["size"])
    assert (tmp_path / "k").read_bytes() == k.read_bytes()
    with pytest.raises(TooLarge, match="over the 1024 byte cap"):  # refused before the first byte is hashed
        c.fetch_blob_bytes(pinned, layer["digest"], max_size=1024)
    assert not _hashing_threads()
    blob = registry.blob_path(layer["digest"])
    data = bytearray(blob.read_bytes())
    data[-1] ^= 1
    blob.write_bytes(bytes(data))
    with pytest.raises(DigestMismatch, match="digest mismatch"):
        c.fetch_blob_to_path(pinned, layer["digest"], str(tmp_path / "t"), size=layer["size"])
    assert not (tmp_path / "t").exists() and not _hashing_threads()


def _hashing_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "sha256"]


def test_cpython_transport_over_tls(tmp_path: Path) -> None:
    """The host's and the init's transport (netstack's HTTP/1.1 over the OS's sockets, TLS by ssl) against a
    registry serving https: a streamed upload and a verified pull with the test CA, over one kept-alive
    connection under a deadline; a server its CA does not vouch for is refused, `insecure` takes it."""
    from cloudboot.registry.local import Registry
    from tests.testca import make_ca

    ca, cert, key = make_ca(tmp_path)
    reg = Registry(tmp_path / "tls", tls=(cert, key))
    try:
        ref = parse(f"{reg.host}/boot/tls:1", plain_http=False)
        blob = os.urandom(3 << 20)
        digest = sha256_digest(blob)
        src = tmp_path / "blob"
        src.write_bytes(blob)
        transport = Transport(timeout=10, cafile=str(ca), deadline=30)
        c = Client(transport, sleep=lambda s: None)
        with open(src, "rb") as f:
            assert c.push_blob(ref, f, digest, len(blob))
        assert c.fetch_blob_bytes(ref, digest, size=len(blob)) == blob
        assert c.fetch_blob_bytes(ref, digest, size=len(blob)) == blob  # the same connection, kept alive
        assert len(transport._idle) == 1
        with pytest.raises(TransportError, match="CERTIFICATE_VERIFY_FAILED"):
            Client(Transport(timeout=10), retries=0).fetch_blob_bytes(ref, digest)
        assert Client(Transport(timeout=10, insecure=True)).fetch_blob_bytes(ref, digest) == blob
    finally:
        reg.stop()
