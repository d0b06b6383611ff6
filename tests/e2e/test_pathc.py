"""Path C end to end under QEMU + EDK2 with a variable store that persists across boots (OVMF on x86_64, AAVMF
on aarch64): the medium (a UKI of our firmware + Debian's kernel + our init) and a cache disk from
`cloud-boot cache-disk` (qcow2 on x86_64, raw on aarch64); the plan in a real registry (the guest sees the
host's 127.0.0.1 as 10.0.2.2).

  boot 1 (network): init picks the target (x86_64: on the menu, typed on the PS/2 keyboard with
          cloudboot.keymap=fr; aarch64: cloudboot.target), stages it, writes the boot entry, reboots;
  boot 2 (no NIC): the firmware starts the entry: the EFI stub loads the initrd named in the entry from the
          cache ESP; the target prints its marker, command line and `efibootmgr -v` (Debian's), reboots;
  boot 3: the target again; it runs the shipped reset-cloud-boot.sh and reboots;
  boot 4: the medium again.
Plus a power cut between the staged files and the boot entry (QEMU killed), and the faults that must stop
the init with a clear FATAL: the cache ESP read-only, full, and no UEFI variables at all."""

from __future__ import annotations

import re
import secrets
import subprocess
from pathlib import Path

import pytest

import arches
from cloudboot.cli import main as cli
from cloudboot.harness import trial
from cloudboot.harness.machine import Machine
from cloudboot.image import cachedisk
from tests.e2e.conftest import firmware_file
from tests.e2e.initvm import fatal_then_rescue, push_debian

pytestmark = pytest.mark.e2e

GUEST_HOST = "10.0.2.2"
BOOT_TIMEOUT = 300
#: x86_64 types the target's name on the menu with the French layout: the keys Q W E R T Y give "azerty"
#: under cloudboot.keymap=fr, and "qwerty" (a target that cannot be pulled) if the layout were not loaded.
PLAN = """
locals {{
  registry = "{reg}"
}}
default_target = "qwerty"
menu {{
  timeout = "0"
}}
target "azerty" {{
  label   = "Debian from the cache ESP"
  index   = "${{local.registry}}/pathc/debian:6.12"
  cmdline = [arch == "arm64" ? "console=ttyAMA0" : "console=ttyS0", "panic=-1", "cbtest={token}"]
  exit    = "reboot"
}}
target "qwerty" {{
  label = "what the keys would say without the French layout"
  index = "${{local.registry}}/pathc/absent:none"
}}
"""


def medium(arch: str, append: str, out: Path) -> Path:
    firmware_file(arches.get(arch).name)  # built, or the test is skipped (a failure under CI)
    return trial.uki_medium(arch, append, out)


def machine(arch: str, disks: list[Path], vars_file: Path, *, nic: bool = False, reboot: bool = False) -> Machine:
    """The machine of every boot: same disks, same variable store, no bootindex (OVMF follows its BootOrder);
    `reboot`: the guest's reboot restarts it in place (else QEMU exits, so a test can change the hardware)."""
    return Machine(arches.get(arch).name, disks=disks, vars_file=vars_file, bootindex=False, nics=1 if nic else 0,
                   extra=["-smp", "2"] + ([] if reboot else ["-no-reboot"]))


@pytest.fixture(scope="module")
def pushed(registry, tmp_path_factory):
    """The Debian kernel + the Path C target initrd as a two-arch artifact, and the plan; returns the plan's
    ref as the guest sees it and the token the target's command line must show."""
    work = tmp_path_factory.mktemp("pathc-push")
    token = secrets.token_hex(4)
    port = registry.host.split(":")[1]
    plan = work / "plan.hcl"
    plan.write_text(PLAN.format(reg=f"{GUEST_HOST}:{port}", token=token))
    push_debian(registry, "pathc/debian:6.12", trial.efi_target_initrd, plan, "plans/pathc:v1")
    return f"{GUEST_HOST}:{port}/plans/pathc:v1", token


def type_on_keyboard(m: Machine, keys: list[str]) -> None:
    """Press keys (QEMU qcodes) on the machine's keyboard, one at a time."""
    for key in keys:
        m.qmp("send-key", keys=[{"type": "qcode", "data": key}])


def expect_target(m: Machine, num: str, token: str, guid: str | None = None) -> str:
    """One boot of the staged target through boot entry `num`: returns the partition GUID the entry names."""
    m.expect_line(rf'BdsDxe: starting {num} "cloud-boot azerty" from HD\(1,GPT,', BOOT_TIMEOUT)
    m.expect_line("EFI stub: Loaded initrd from command line option", 120)
    m.expect_line(trial.EFI_MARKER, 180)
    line = m.expect_line("target cmdline:", 30).text
    assert f"cbtest={token}" in line and "initrd=\\EFI\\Linux\\azerty-initrd" in line, line
    net = m.expect_line("target net:", 30).text
    assert "eth" not in net and "en" not in net.split(":", 1)[1], net
    order = m.expect_line(r"^BootOrder: ", 30).text
    assert order.split(": ")[1].split(",")[0] == num[4:], order  # ours first
    entry = m.expect_line(rf"^{num}\* cloud-boot azerty\s", 30).text
    hd = re.search(r"HD\(1,GPT,([0-9a-f-]{36}),0x800,0x7f7df\)/File\(\\EFI\\Linux\\azerty-vmlinuz\.efi\)", entry)
    assert hd, entry  # efibootmgr reads our entry back: partition 1 at LBA 2048 of the 256 MiB cache disk
    assert guid is None or hd.group(1) == guid
    m.expect_line("efibootmgr: status 0", 30)
    m.expect("target: command?", 30)
    return hd.group(1)


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_stage_reboot_target_reset(pushed, tmp_path: Path, arch: str) -> None:
    plan, token = pushed
    if arch == "amd64":  # the menu, answered on the keyboard in the French layout; exit = "reboot" from the plan
        append = f"cloudboot.plan={plan} cloudboot.insecure=1 cloudboot.lldp=0 cloudboot.keymap=fr"
    else:  # no menu; the sink asked for on the command line
        append = f"cloudboot.plan={plan} cloudboot.insecure=1 cloudboot.lldp=0 cloudboot.target=azerty " \
                 "cloudboot.exit=reboot"
    # x86_64's cache disk is a qcow2 image (QEMU opens it as qcow2), aarch64's raw
    fmt = "qcow2" if arch == "amd64" else "raw"
    disks = [medium(arch, append, tmp_path / "medium.img"), tmp_path / f"cache.{fmt}"]
    assert cli(["cache-disk", "-o", str(disks[1]), "--format", fmt]) == 0
    guid = cachedisk.describe(disks[1])["partition"]["guid"]
    vars_file = tmp_path / "vars.fd"

    m = machine(arch, disks, vars_file, nic=True).start()
    try:
        m.expect_line(r"cloud-boot: .* init: Python", BOOT_TIMEOUT)
        if arch == "amd64":
            m.expect_line(r"keymap: fr loaded on /dev/tty0", 60)
            m.expect("choice [qwerty]: ", 180)
            type_on_keyboard(m, ["q", "w", "e", "r", "t", "y", "ret"])
        m.expect_line(r'target="azerty" index=10\.0\.2\.2:\d+/pathc/debian:6\.12', 180)
        m.expect_line(r"reboot-sink: staged kernel=\\EFI\\Linux\\azerty-vmlinuz\.efi "
                      r"initrd=\\EFI\\Linux\\azerty-initrd$", 300)
        num = re.search(r"(Boot[0-9A-F]{4}) written", m.expect_line(r"reboot-sink: Boot[0-9A-F]{4} written", 60).text)
        num = num.group(1)
        m.expect_line(rf"reboot-sink: BootOrder prefixed with {num[4:]}$", 60)
        assert m.wait(120) == 0  # the guest's reboot: -no-reboot ends this QEMU; the next one has no NIC
    finally:
        m.kill()

    m = machine(arch, disks, vars_file, reboot=True).start()
    try:
        assert "-netdev" not in m.command() and f"format={fmt},file={disks[1]}" in " ".join(m.command())
        part = expect_target(m, num, token)
        assert part == guid  # the cache disk's own partition GUID
        m.send("reboot\n")
        expect_target(m, num, token, part)  # a third boot: still the target
        m.send("reset\n")
        m.expect_line(rf"^deleted {num}$", 60)
        m.expect_line(rf"^BootOrder {num[4:]},[0-9A-F,]+ -> [0-9A-F,]+$", 30)
        m.expect_line("reset: status 0", 30)
        m.expect_line(r"cloud-boot: .* init: Python", BOOT_TIMEOUT)  # the medium again
        assert "cloud-boot azerty" not in m.text[m.text.rindex("reset: status 0"):]
    finally:
        m.kill()


@pytest.fixture(scope="module")
def disk_medium(tmp_path_factory):
    """A disk-mode medium (no network needed) staging the target disk's Debian kernel, pausing 60 s between the
    staged files and the boot entry; and that target disk."""
    out = tmp_path_factory.mktemp("pathc-disk") / "medium.img"
    append = ('cloudboot.disk=LABEL=CBTARGET cloudboot.exit=reboot cloudboot.reboot.pause=60s '
              f'cloudboot.cmdline="console={trial.console("amd64")} panic=-1"')
    return medium("amd64", append, out), trial.target_disk("amd64")[0]


def _esp_files(cache: Path) -> dict[str, int]:
    """name -> size of the files in the cache ESP's \\EFI\\Linux (read with mtools)."""
    out = subprocess.run(["mdir", "-b", "-i", f"{cache}@@1M", "::/EFI/Linux"], capture_output=True, text=True,
                         env={"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"}).stdout
    sizes = {}
    for path in out.split():
        name = path.rsplit("/", 1)[-1]
        if name:
            sizes[name] = len(subprocess.run(["mtype", "-i", f"{cache}@@1M", path], capture_output=True,
                                             env={"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"}).stdout)
    return sizes


def test_power_cut_between_files_and_entry(disk_medium, tmp_path: Path) -> None:
    """QEMU killed while the init waits between the staged (complete) files and the boot entry: the next boot
    is the medium again (no entry was written), which stages again over the leftovers."""
    med, target = disk_medium
    cache = tmp_path / "cache.img"
    assert cli(["cache-disk", "-o", str(cache)]) == 0
    vars_file = tmp_path / "vars.fd"
    kernel = trial.boot_kernel("amd64")
    for _ in (1, 2):
        m = machine("amd64", [med, cache, target], vars_file).start()
        try:
            m.expect_line(r"cloud-boot: .* init: Python", BOOT_TIMEOUT)  # the medium, both times
            m.expect_line(r"reboot-sink: pausing 60s before the boot entry", 180)
        finally:
            m.kill()  # the power cut
        files = _esp_files(cache)
        assert files == {"disk-vmlinuz.efi": kernel.stat().st_size,
                         "disk-initrd": trial.target_initrd("amd64").stat().st_size}, files
        assert "cloud-boot disk" not in m.text and "reboot-sink: Boot" not in m.text


def _fault(disks: list[Path], append: str, *, efi: bool = True, writable: bool = True) -> Machine:
    return trial.machine("amd64", trial.boot_kernel("amd64"), trial.initramfs("amd64"),
                         f"panic=-1 cloudboot.disk=LABEL=CBTARGET cloudboot.exit=reboot {append}", disks, efi=efi,
                         writable=writable).start()


def test_faults_are_fatal_with_the_reason(tmp_path: Path) -> None:
    target = trial.target_disk("amd64")[0]
    cache = tmp_path / "cache.img"
    assert cli(["cache-disk", "-o", str(cache)]) == 0
    q = _fault([target, cache], "", writable=False)  # the cache disk attached read-only
    try:
        fatal_then_rescue(q, BOOT_TIMEOUT, "esp: /dev/vdb1", "is read-only", "the cache disk must be writable")
        # The variables are untouched; and, at the rescue prompt, what `cloud-boot reset` runs (efivars.reset)
        # on the real efivarfs: an entry of ours, BootOrder, and CloudBootCmdline (which efivarfs marks
        # immutable) written, then removed.
        q.send("from cloudboot.init import efivars as e; s = e.Efivarfs(); print('OURS', s.ours())\n")
        q.expect_line(r"^(>>> )?OURS \[\]$", 60)
        q.send("s.write('Boot0C0B', e.boot_entry('probe', '\\\\x.efi', '', '')); "
               "s.set_boot_order(e.prepend(s.boot_order(), 0xC0B)); "
               "s.write('CloudBootCmdline', b'quiet', e.CLOUDBOOT); print('RESET', e.reset(s), s.ours())\n")
        line = q.expect_line(r"RESET \[", 60).text
        assert re.search(r"'deleted Boot0C0B', 'BootOrder 0C0B,[0-9A-F,]+ -> [0-9A-F,]+', "
                         r"'deleted CloudBootCmdline'\] \[\]$", line), line
    finally:
        q.kill()
    small = tmp_path / "small.img"
    assert cli(["cache-disk", "-o", str(small), "--size", "64"]) == 0
    filler = tmp_path / "filler"
    filler.write_bytes(bytes(56 << 20))
    subprocess.run(["mcopy", "-i", f"{small}@@1M", str(filler), "::/filler"], check=True,
                   env={"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"})
    q = _fault([target, small], "")  # 7 MiB free, the kernel alone is 12 MiB
    try:
        fatal_then_rescue(q, BOOT_TIMEOUT, "reboot-sink: the cache ESP has", "make a bigger cache disk")
    finally:
        q.kill()
    assert _esp_files(small) == {}  # nothing half-written
    q = _fault([target, cache], "", efi=False)  # QEMU's own boot: no UEFI, no variables
    try:
        fatal_then_rescue(q, BOOT_TIMEOUT, "cloudboot.exit=reboot needs UEFI variables")
    finally:
        q.kill()
