"""Path A over the network, end to end in QEMU: init brings up virtio-net with its own DHCP client (QEMU user
networking), reads metadata JSON from a 127.0.0.1 HTTP server, pulls the plan from a real registry
(Debian's docker-registry on 127.0.0.1, seen by the guest as 10.0.2.2), pulls the target's kernel + initrd
artifact, kexecs; the target prints a marker and its /proc/cmdline. And the failures: an unreachable registry
and a plan without the asked target each end in FATAL and the rescue prompt."""

from __future__ import annotations

import secrets

import pytest

from cloudboot.cli import main as cli
from cloudboot.harness import trial
from cloudboot.harness.machine import Machine
from tests.e2e.initvm import Metadata, fatal_then_rescue, push_debian, target_cmdline
from tests.e2e.netbootvm import GUEST_HOST

pytestmark = pytest.mark.e2e

ARCH = "amd64"  # the failure cases run on amd64 only; the full path runs on amd64 and arm64 (kexec_load)
BOOT_TIMEOUT = 240
PLAN = """
locals {{
  registry = "{reg}"
}}
default_target = "debian"
target "debian" {{
  version = "6.12"
  label   = "Debian ${{self.version}}"
  index   = "${{local.registry}}/boot/debian:${{self.version}}"
  cmdline = [arch == "arm64" ? "console=ttyAMA0" : "console=ttyS0", "panic=-1", "cbtest={token}",
             "ip={{{{.IPSpec}}}}"]
}}
target "other" {{
  arch  = "riscv64"
  index = "${{local.registry}}/boot/debian:riscv64-only"
}}
"""


@pytest.fixture(scope="module")
def pushed(registry, tmp_path_factory):
    """The Debian kernel + the marker initrd as an artifact, and the plan, in the registry; the token the
    target's command line must show."""
    work = tmp_path_factory.mktemp("push")
    token = secrets.token_hex(4)
    port = registry.host.split(":")[1]
    plan = work / "plan.hcl"
    plan.write_text(PLAN.format(reg=f"{GUEST_HOST}:{port}", token=token))
    push_debian(registry, "boot/debian:6.12", trial.target_initrd, plan, "plans/smoke:v1",
                tuple(dict.fromkeys(a for a, _ in KERNELS)))
    meta = Metadata()
    yield f"{GUEST_HOST}:{port}", meta, token
    meta.server.shutdown()


def _boot(append: str, arch: str = ARCH, kernel: str = "debian") -> Machine:
    return trial.machine(arch, trial.boot_kernel(arch, kernel), trial.initramfs(arch, kernel=kernel),
                         f"panic=-1 {append}", nic=True).start()


#: (arch, the kernel the init runs on): Debian's and our own cloud kernel (no modules: virtio-net is built in) on
#: amd64, arm64 and loong64 (kexec_load with our loaders on arm64 and loong64); riscv64 on ours only (the slowest
#: arch under TCG; Debian's riscv64 kernel runs the same loader in test_init_boot's disk mode).
KERNELS = [(a, k) for a in ("amd64", "arm64", "loong64") for k in ("debian", "our")] + [("riscv64", "our")]


@pytest.mark.parametrize(("arch", "kernel"), KERNELS, ids=[f"{a}-{k}" for a, k in KERNELS])
def test_metadata_plan_registry_kexec(pushed, arch: str, kernel: str) -> None:
    if kernel == "our" and (why := trial.own_kernel_missing(arch)):
        pytest.skip(why)
    reg, meta, token = pushed
    meta.document = {"cloudboot": {"plan": f"{reg}/plans/smoke:v1", "insecure": True}}
    q = _boot(f"cloudboot.metadata.url=http://{GUEST_HOST}:{meta.server.server_address[1]}/meta.json", arch,
              kernel)
    try:
        q.expect_line(r"net: eth\d+ 10\.0\.2\.15/24 gw 10\.0\.2\.2 .*\(dhcp\)", BOOT_TIMEOUT)
        q.expect_line(rf"plan: plan {reg}/plans/smoke:v1 from the metadata URL ", 60)
        q.expect_line(r'target="debian" index=10\.0\.2\.2:\d+/boot/debian:6\.12', 120)
        q.expect_line(r"kernel: pulling \d+ bytes", 60)
        q.expect_line(r"kexec boot$", 240)
        line = target_cmdline(q, 120)
        assert f"cbtest={token}" in line and "ip=10.0.2.15::10.0.2.2:255.255.255.0::eth0:off" in line, line
        assert q.wait(60) == 0
    finally:
        q.kill()


@pytest.mark.parametrize("first", ["our", "debian"])
def test_our_kernel_as_a_zboot_target(registry, first: str) -> None:
    """Our arm64 cloud kernel is an EFI zboot image with a zstd payload. As the target of the arm64 init (trixie's
    CPython 3.13, which has no compression.zstd) libzstd unpacks it through ctypes (init.libzstd): the portable
    decoder it fell back to before took about 50 s under TCG. On Debian's arm64 kernel (no kexec_file_load) our
    kexec_load loader stages the unpacked Image (it was once handed the zboot file and refused it)."""
    arch = "arm64"
    if why := trial.own_kernel_missing(arch):
        pytest.skip(why)
    ref = f"boot/zboot:{arch}-{secrets.token_hex(3)}"
    cli(["push", "artifact", f"{registry.host}/{ref}", "--platform", f"linux/{arch}", "--kernel",
         str(trial.boot_kernel(arch, "our")), "--initrd", str(trial.target_initrd(arch))])
    token = secrets.token_hex(4)
    image = f"{GUEST_HOST}:{registry.host.split(':')[1]}/{ref}"
    q = _boot(f'cloudboot.image={image} cloudboot.insecure=1 cloudboot.lldp=0 '
              f'cloudboot.cmdline="console={trial.console(arch)} panic=-1 cbtest={token}"', arch, first)
    try:
        q.expect_line(r"init: Python 3\.13\.", BOOT_TIMEOUT)
        unpacked = q.expect_line(r"zboot: unpacked zstd kernel", 120).text
        assert unpacked.endswith("bytes (libzstd, ctypes)"), unpacked
        loaded = q.expect_line(r"kexec: loaded with", 120).text
        assert ("kexec_load (entry" if first == "debian" else "kexec_file_load") in loaded, loaded
        assert f"cbtest={token}" in target_cmdline(q, 120)
        assert q.wait(60) == 0
    finally:
        q.kill()


def test_unreachable_registry_is_fatal(pushed) -> None:
    q = _boot(f"cloudboot.plan={GUEST_HOST}:1/plans/smoke:v1 cloudboot.insecure=1 cloudboot.lldp=0")
    try:
        fatal_then_rescue(q, BOOT_TIMEOUT, "registry: ")
    finally:
        q.kill()


def test_missing_target_is_fatal(pushed) -> None:
    reg, _, _ = pushed
    q = _boot(f"cloudboot.plan={reg}/plans/smoke:v1 cloudboot.insecure=1 cloudboot.target=nope cloudboot.lldp=0")
    try:
        fatal_then_rescue(q, BOOT_TIMEOUT, 'no target "nope"')
    finally:
        q.kill()


@pytest.fixture(scope="module")
def cosign_keys(tmp_path_factory):
    """A P-256 key pair as cosign uses (PKCS#8 private, SubjectPublicKeyInfo public, PEM)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    d = tmp_path_factory.mktemp("cosign")
    (d / "cosign.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption()))
    (d / "cosign.pub").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return d


def test_cosign_enforced_by_init(pushed, registry, cosign_keys, tmp_path) -> None:
    """An initramfs with /etc/cosign.pub boots what was signed with the key, and refuses an unsigned plan."""
    reg, _, token = pushed
    for ref in ("plans/smoke:v1", "boot/debian:6.12"):
        assert cli(["sign-artifact", f"{registry.host}/{ref}", "--cosign-key", str(cosign_keys / "cosign.key")]) == 0
    unsigned = tmp_path / "unsigned.hcl"
    unsigned.write_text(f'target "t" {{\n  index = "{reg}/boot/debian:6.12"\n}}\n')
    assert cli(["push", "plan", f"{registry.host}/plans/unsigned:v1", str(unsigned)]) == 0
    initrd = trial.initramfs(ARCH, cosign_key=cosign_keys / "cosign.pub")

    def boot(plan: str) -> Machine:
        return trial.machine(ARCH, trial.boot_kernel(ARCH), initrd, f"panic=-1 cloudboot.plan={reg}/{plan} "
                             "cloudboot.insecure=1 cloudboot.lldp=0", nic=True).start()

    q = boot("plans/smoke:v1")
    try:
        q.expect_line(r"cosign: .*plans/smoke:v1: signature verified", BOOT_TIMEOUT)
        q.expect_line(r"cosign: .*boot/debian:6\.12: signature verified", 120)
        assert f"cbtest={token}" in target_cmdline(q)
    finally:
        q.kill()
    q = boot("plans/unsigned:v1")
    try:
        fatal_then_rescue(q, BOOT_TIMEOUT, "signature")
    finally:
        q.kill()
