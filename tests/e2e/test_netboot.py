"""Path D end to end: the firmware alone (no UKI, no disk) boots from the network. QEMU user networking hands
out the plan reference as the DHCP boot file name; Debian's docker-registry on 127.0.0.1 (10.0.2.2 to the
guest) serves the plan's parsed form and a multi-arch index of Debian kernels + the marker initrd; the
firmware's own virtio-net driver, lwIP and HTTP client pull them, and the initrd prints the plan's command
line. Faults are checked at the REPL (one boot, many cases)."""

from __future__ import annotations

import re
import secrets
import time

import pytest

import arches
from cloudboot.cli import main as cli
from cloudboot.harness.guests import MARKER, guest
from cloudboot.harness.repl import Repl
from tests.e2e.conftest import firmware_file
from tests.e2e.netbootvm import GO, GUEST_HOST, PLAN, nic_args, push_boot_index, push_plan

pytestmark = pytest.mark.e2e

ARCHES = ["x86_64", "aarch64", "riscv64", "loongarch64"]


@pytest.fixture(scope="module")
def netboot_registry(registry, tmp_path_factory):
    """The plan and the multi-arch index in the session's plain registry; the token the command line shows."""
    work = tmp_path_factory.mktemp("netboot")
    token = secrets.token_hex(4)
    push_boot_index(registry, work, ARCHES)
    plan_url = push_plan(registry, work, "plans/netboot:v1",
                         PLAN.format(reg=f"{GUEST_HOST}:{registry.port}", token=token))
    return plan_url, token


@pytest.mark.parametrize("arch", ARCHES)
def test_firmware_alone_boots_plan_from_dhcp_bootfile(netboot_registry, machine, arch: str) -> None:
    plan_url, token = netboot_registry
    m = machine(arch, efi=firmware_file(arch), extra=nic_args(plan_url) + ["-no-reboot"])
    m.expect_line(r"network boot after the disks", 180)
    m.expect_line(r"net: virtio-net 1af4:1041 .*\(our virtio-net driver\)", 120)
    m.expect_line(r"net: lease 10\.0\.2\.15/255\.255\.255\.0 gw 10\.0\.2\.2", 60)
    m.expect_line(re.escape(f"net: plan {plan_url} (from the DHCP boot file name)"), 30)
    m.expect_line(r'net: target "debian"', 120)
    m.expect_line(r"net: kernel: \d+ bytes in \d+ ms .*sha256 verified", 300)
    m.expect_line(r"net: initrd: \d+ bytes in \d+ ms .*sha256 verified", 120)
    m.expect(MARKER, 240)
    line = m.expect_line(r"^cmdline: ", 60).text
    assert f"cbnet={token}" in line and f"console={arches.get(arch).linux_console}" in line, line


# ---- cosign: a firmware that carries a key ------------------------------------------------------------------

def _keypair(d, name: str):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    (d / f"{name}.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()))
    (d / f"{name}.pub").write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    return d / f"{name}.key", d / f"{name}.pub"


@pytest.fixture(scope="module")
def signed(registry, netboot_registry, tmp_path_factory):
    """A key the firmware carries; the netboot plan and index signed with it; an unsigned plan; a plan signed
    with another key. Returns (key .pub, signed plan URL, unsigned plan URL, wrongly signed plan URL, token)."""
    from cloudboot.fwbuild.firmware import add_sections, ca_section, cosign_key_section

    d = tmp_path_factory.mktemp("cosign")
    key, pub = _keypair(d, "firmware")
    other, _ = _keypair(d, "other")
    plan_url, token = netboot_registry
    text = PLAN.format(reg=f"{GUEST_HOST}:{registry.port}", token=token)
    signed_url = push_plan(registry, d, "plans/signed:v1", text)
    unsigned_url = push_plan(registry, d, "plans/unsigned:v1", text)
    wrong_url = push_plan(registry, d, "plans/wrongkey:v1", text)
    menu_text = text.replace('default_target = "debian"', 'default_target = "debian"\nmenu {\n  timeout = "20s"\n}') + \
        f'target "rescue" {{\n  label = "Rescue"\n  index = "http://{GUEST_HOST}:{registry.port}/boot/debian:netboot"\n}}\n'
    push_plan(registry, d, "plans/menu:v1", menu_text)
    for ref, k in (("plans/signed:v1", key), ("boot/debian:netboot", key), ("plans/wrongkey:v1", other),
                   ("plans/menu:v1", key)):
        assert cli(["sign-artifact", f"{registry.host}/{ref}", "--cosign-key", str(k)]) == 0
    keyed = {"key": pub, "private": key}
    for arch in ("x86_64", "aarch64"):
        keyed[arch] = add_sections(firmware_file(arch), ca_section([], debian=True), cosign_key_section(pub),
                                   out=d / arches.get(arch).efi_name)
    return keyed, signed_url, unsigned_url, wrong_url, token


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_signed_plan_boots_under_enforce(signed, machine, arch: str) -> None:
    keyed, signed_url, _, _, token = signed
    m = machine(arch, efi=keyed[arch], append="cloudboot.wait=0", extra=nic_args(signed_url) + ["-no-reboot"])
    m.expect_line(r"cosign: enforce \(the firmware carries a P-256 key\)", 240)
    m.expect_line(re.escape(f"cosign: {signed_url}: signature verified"), 120)
    m.expect_line(r"cosign: http://10\.0\.2\.2:\d+/boot/debian:netboot: signature verified", 120)
    m.expect(MARKER, 400)
    assert f"cbnet={token}" in m.expect_line(r"^cmdline: ", 60).text


def test_faults_at_the_repl(signed, registry, httptest, tmp_path, machine) -> None:
    """One keyed x86_64 firmware at its REPL, each fault a clear line: unsigned and wrongly signed plans
    refused under enforce (and warn lets the unsigned one through), 404, 401, 5xx after bounded retries,
    a connection dropped mid-blob resumed with Range, a silent server, a digest mismatch, a DNS failure."""
    from cloudboot.registry.local import Registry
    from tests.ociregistry import FaultProxy

    keyed, signed_url, unsigned_url, wrong_url, _ = signed
    auth_reg = Registry(tmp_path / "auth", auth="htpasswd")
    proxy = FaultProxy(registry.host)
    proxy.fail, proxy.status, proxy.match = 1000, 503, "/v2/"
    try:
        m = machine("x86_64", efi=keyed["x86_64"], append="cloudboot.repl", extra=nic_args())
        repl = Repl(m)
        repl.wait_banner(120)
        repl.enter(60)
        repl.exec("from netboot import link, boot\nnic, lease = link.bring_up(print)\n"
                  "s = boot.Session(boot.options(), lease)\n"
                  "def fails(fn, *a):\n"
                  "    try:\n        fn(*a)\n    except Exception as e:\n"
                  "        print(type(e).__name__ + ': ' + str(e))\n    else:\n        print('no error')\n", 120)
        host = f"http://{GUEST_HOST}"

        def line(code: str, timeout: float = 120) -> str:
            return repl.exec(code, timeout).strip().splitlines()[-1]

        assert line(f"fails(s.manifest, '{unsigned_url}')").startswith("SignatureError: ")
        assert "no cosign signature" in line(f"fails(s.manifest, '{unsigned_url}')")
        assert "signature does not verify with the key" in line(f"fails(s.manifest, '{wrong_url}')")
        assert line(f"s.policy = 'warn'\nfails(s.manifest, '{unsigned_url}')") == "no error"
        repl.exec("s.policy = 'enforce'")
        assert line(f"fails(s.manifest, '{host}:{registry.port}/nope/nothing:v1')").startswith("NotFound: ")
        assert "wants credentials" in line(f"fails(s.manifest, '{host}:{auth_reg.port}/plans/x:v1')")
        out = line(f"fails(s.manifest, '{host}:{proxy.port}/plans/signed:v1')")
        assert out.startswith("ServerError: ") and "503 after 4 attempts" in out, out
        # a blob whose first GET is cut after 300000 bytes: resumed with Range, verified
        from tests.httptestserver import BLOB, BLOB_DIGEST

        port = httptest.split(":")[1]
        out = repl.exec(f"r = s.ref('{host}:{port}/r:t')\n"
                        f"sink = s.client.fetch_blob_to_sink(r, '{BLOB_DIGEST}', lambda: boot.PageSink({len(BLOB)}),"
                        f" {len(BLOB)})\nprint(sink.pos)\nsink.free()", 120)
        assert "resuming {} at byte 300000".format(BLOB_DIGEST) in out and out.strip().endswith(str(len(BLOB))), out
        wrong = "sha256:" + "0" * 64
        out = line(f"fails(s.client.fetch_blob_to_sink, r, '{wrong}', lambda: boot.PageSink({len(BLOB)}), "
                   f"{len(BLOB)})")
        assert out.startswith("DigestMismatch: ") and "blob digest mismatch" in out, out
        slow = f"{host}:{port}/slow"
        out = line(f"from netstack import http\nfails(http.Transport(timeout=1).request, 'GET', '{slow}', {{}})")
        assert out.startswith("TransportError: ") and "/slow" in out, out
        out = line("fails(s.transport.request, 'GET', 'http://no-such-registry.invalid/v2/', {})")
        assert out.startswith("TransportError: DNS: cannot resolve no-such-registry.invalid"), out
        # the plan's menu: the disk menu's keys and countdown (a digit stops it, Enter boots the choice)
        menu_url = signed_url.replace("plans/signed:v1", "plans/menu:v1")
        start = repl.launch(f"print('CHOSEN', boot.choose_target(s, '{menu_url}')['name'])", 120)
        m.expect("default in 20 s", 120)
        m.send(b"2")
        m.expect("countdown stopped", 30)
        m.send(b"\r")
        # the whole line: a match on a line still arriving could read "CHOSEN resc"
        assert m.expect_line(r"CHOSEN \w+", 60).text.endswith("CHOSEN rescue"), m.text[start:]
    finally:
        auth_reg.stop()
        proxy.stop()


def test_no_link_and_no_lease_fall_through(machine) -> None:
    """A NIC whose link is down, then up on a wire nobody answers: each a clear line, and the cascade goes
    on to its next step."""
    dead = ["-netdev", "socket,id=n0,udp=127.0.0.1:9,localaddr=127.0.0.1:0",
            "-device", "virtio-net-pci,netdev=n0,romfile=,disable-legacy=on,id=nic0"]
    m = machine("x86_64", efi=firmware_file("x86_64"), append="cloudboot.repl", extra=dead)
    repl = Repl(m)
    repl.wait_banner(120)
    m.qmp("set_link", name="nic0", up=False)
    repl.enter(60)
    out = repl.exec("from netboot import link\ntry:\n    link.bring_up(print, link_s=1)\n"
                    "except OSError as e:\n    print(e)\n", 60)
    assert out.strip().endswith("net: no link on virtio-net 1af4:1041 at 0000:00:02.0 after 1 s"), out
    m.qmp("set_link", name="nic0", up=True)
    out = repl.exec("import _net\ntry:\n    link.bring_up(print, dhcp_s=2)\n"
                    "except OSError as e:\n    print(e)\n", 60)
    assert out.strip().endswith("net: no DHCP lease on virtio-net 1af4:1041 at 0000:00:02.0 within 2 s"), out
    out = repl.exec("import loader\nloader.run()", 120)
    assert "network boot skipped: net: no DHCP lease" in out and "nothing bootable found" in out, out


# ---- https, token auth, cosign, a registry restarted mid-download ---------------------------------------------

@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_https_token_auth_signed_plan_and_registry_restart(signed, tmp_path, machine, arch: str) -> None:
    """The registry serves https with a test CA and wants bearer tokens (credentials from the load options);
    the plan and index are signed with the firmware's key; while the (160 MiB: seconds, whatever the host's
    socket buffers hold) initrd downloads, the registry
    is killed and started again on the same port and storage: the download resumes, verifies, boots."""
    from cloudboot.fwbuild.firmware import add_sections, ca_section, cosign_key_section
    from cloudboot.registry.local import PASSWORD, USER, Registry, free_port
    from tests.ociregistry import TokenServer
    from tests.testca import make_ca

    keyed, _, _, _, token = signed
    key, pub = keyed["private"], keyed["key"]
    ca, cert, tls_key = make_ca(tmp_path)
    staging = Registry(tmp_path / "staging")  # plain, for the host's pushes; the https one serves its storage
    tls_port = free_port()
    try:
        g = guest(arch)
        big = tmp_path / "initrd-big.cpio"
        big.write_bytes(g.initrd.read_bytes().ljust(160 << 20, b"\0"))  # cpio ignores the zero padding
        ref = f"{staging.host}/boot/big:tls"
        assert cli(["push", "artifact", f"{ref}-{GO[arch]}", "--platform", f"linux/{GO[arch]}", "--kernel",
                    str(g.kernel), "--initrd", str(big)]) == 0
        assert cli(["push", "index", ref, "-p", f"linux/{GO[arch]}={ref}-{GO[arch]}"]) == 0
        text = PLAN.format(reg=f"{GUEST_HOST}:{tls_port}", token=token).replace("http://", "https://")
        push_plan(staging, tmp_path, "plans/tls:v1", text.replace("boot/debian:netboot", "boot/big:tls"))
        for r in ("plans/tls:v1", "boot/big:tls"):
            assert cli(["sign-artifact", f"{staging.host}/{r}", "--cosign-key", str(key)]) == 0
    finally:
        staging.stop()
    tokens = TokenServer(tmp_path)
    realm = f"http://{GUEST_HOST}:{tokens.port}/token"

    def serve(n: int) -> Registry:
        return Registry(tmp_path / f"tls{n}", auth="token", token_realm=realm, token_cert=tokens.cert_pem,
                        tls=(cert, tls_key), port=tls_port, storage=staging.root)

    reg = serve(1)
    try:
        efi = add_sections(firmware_file(arch), ca_section([ca], debian=False), cosign_key_section(pub),
                           out=tmp_path / arches.get(arch).efi_name)
        plan_url = f"https://{GUEST_HOST}:{tls_port}/plans/tls:v1"
        m = machine(arch, efi=efi, append=f"cloudboot.wait=0 rd.cloudboot.user={USER} rd.cloudboot.pass={PASSWORD}",
                    extra=nic_args(plan_url) + ["-device", "virtio-rng-pci", "-no-reboot"])
        m.expect_line(r"tls: 1 roots, entropy from EFI_RNG_PROTOCOL", 240)
        m.expect_line(re.escape(f"cosign: {plan_url}: signature verified"), 120)
        m.expect_line(r"net: kernel: \d+ bytes in .*sha256 verified", 300)
        m.expect_line(r"net: initrd: pulling 167772160 bytes", 60)
        time.sleep(3)  # the line comes before the GET: be well into the ~15 s body
        reg.kill()
        reg = serve(2)
        m.expect_line(r"oci: resuming sha256:[0-9a-f]{64} at byte \d+", 120)
        m.expect_line(r"net: initrd: 167772160 bytes in .*sha256 verified", 300)
        m.expect(MARKER, 400)
        assert f"cbnet={token}" in m.expect_line(r"^cmdline: ", 60).text
        assert tokens.issued >= 1
    finally:
        reg.stop()
        tokens.stop()


def test_non_virtio_nic_goes_through_the_firmwares_snp(httptest, machine) -> None:
    """An e1000e (its SNP from the iPXE option ROM QEMU ships): the same lwIP and HTTP above the firmware's
    SIMPLE_NETWORK protocol, and the console says which driver carries the frames."""
    m = machine("x86_64", efi=firmware_file("x86_64"), append="cloudboot.repl",
                extra=["-netdev", "user,id=n0", "-device", "e1000e,netdev=n0"])
    repl = Repl(m)
    repl.wait_banner(120)
    repl.enter(60)
    port = httptest.split(":")[1]
    out = repl.exec("from netboot import link\nfrom netstack import http\nnic, lease = link.bring_up(print)\n"
                    f"print(http.Transport().request('GET', 'http://{GUEST_HOST}:{port}/hello', {{}}).read())", 120)
    assert re.search(r"net: SNP handle [0-9a-f]+ \(firmware SNP driver\)", out), out
    assert out.strip().endswith("b'hello\\n'"), out
