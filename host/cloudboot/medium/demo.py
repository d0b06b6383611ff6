"""`cloud-boot demo` / `make demo`: the cloud medium booting a machine from a plan in a registry, end to end.

A throw-away registry (Debian's docker-registry on 127.0.0.1, storage in a temporary directory) gets, per arch,
an artifact of Debian's kernel with a small demo initramfs (busybox: it prints what booted,
from which reference, with which command line, then offers a shell), all under one multi-arch index, and a
plan with a menu of two targets. QEMU boots the medium (as a CD, or as a disk) with user networking whose DHCP
hands out the plan's reference as the boot file name; the guest reaches the host's 127.0.0.1 as 10.0.2.2.
The registry, the temporary files and QEMU are gone when the demo ends, however it ends (Ctrl-C, SIGTERM).

`check` is the non-interactive form the tests run: it answers the menu with Enter (the default target) and
succeeds when the target's marker appears.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import arches
from cloudboot.errors import CloudBootError

MARKER = "CLOUDBOOT-DEMO-TARGET-UP"
#: QEMU user networking's address of the host's loopback.
GUEST_HOST = "10.0.2.2"
REPO = "cloud-boot"
PLAN_REF = f"{REPO}/demo-plan:v1"
INDEX_REF = f"{REPO}/demo-debian:v1"

DEMO_INIT = """#!/bin/busybox sh
# cloud-boot demo target: what booted, from where, with which command line; then a shell (or power off).
/bin/busybox mkdir -p /proc /sys /dev /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
target=?; ref=?; next=shell
for word in $(cat /proc/cmdline); do
  case "$word" in
    demo.target=*) target="${word#demo.target=}" ;;
    demo.ref=*) ref="${word#demo.ref=}" ;;
    demo.then=*) next="${word#demo.then=}" ;;
  esac
done
echo
echo "==================== cloud-boot demo target ===================="
echo "booted:  Linux $(uname -r) on $(uname -m), $(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) MiB"
echo "target:  $target (the plan's menu, answered on this console)"
echo "from:    $ref"
echo "cmdline: $(cat /proc/cmdline)"
echo "================================================================="
echo "MARKER"
if [ "$next" = poweroff ]; then poweroff -f; fi
echo "A shell on the console: look around; 'poweroff -f' (or Ctrl-C on the host) ends the demo."
exec setsid cttyhack sh
""".replace("MARKER", MARKER)

PLAN = """# The cloud-boot demo plan, pushed by `cloud-boot demo` to its throw-away registry.
locals {
  registry = "http://GUEST/cloud-boot"
  console  = arch == "arm64" ? "ttyAMA0" : "ttyS0"
}
default_target = "demo-shell"
menu {
  timeout = "10s"
  prompt  = "cloud-boot demo: choose a target"
}
target "demo-shell" {
  label   = "Debian's kernel + the demo initramfs: a report, then a shell"
  index   = "${local.registry}/demo-debian:v1"
  cmdline = ["console=${local.console}", "quiet", "ip={{.IPSpec}}", "demo.target=${self.name}",
             "demo.ref=${local.registry}/demo-debian:v1"]
}
target "demo-report" {
  label   = "the same with the kernel's messages: a report, then power off"
  index   = "${local.registry}/demo-debian:v1"
  cmdline = ["console=${local.console}", "ip={{.IPSpec}}", "demo.target=${self.name}",
             "demo.ref=${local.registry}/demo-debian:v1", "demo.then=poweroff"]
}
"""


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def demo_initrd(arch: arches.Arch) -> Path:
    """busybox-static of `arch` + the demo /init as a newc cpio (cached under build/demo/<arch>/)."""
    from cloudboot.initramfs.busybox import busybox_initrd
    from cloudboot.paths import build_dir

    return busybox_initrd(arch.debian, DEMO_INIT, build_dir() / "demo" / arch.name / "demo-initrd.cpio",
                          dirs=("proc", "sys", "dev", "tmp", "root"), console=True)


@dataclass
class Published:
    """The demo registry: the host's address of it (`host`, 127.0.0.1:PORT) and the guest's (the boot file
    name)."""

    host: str
    port: int

    @property
    def bootfile(self) -> str:
        """The plan's reference as the guest reaches it (plain HTTP): what DHCP hands out."""
        return f"http://{GUEST_HOST}:{self.port}/{PLAN_REF}"


def publish(registry_host: str, say: Callable[[str], None] = _stderr) -> Published:
    """Push the demo's artifacts (per arch the init runs on: Debian's kernel + the demo initramfs), their
    multi-arch index and the plan into the registry at `registry_host` (127.0.0.1:PORT)."""
    from cloudboot.initramfs import debian
    from cloudboot.registry.push import pinned, push_artifact, push_index, push_plan
    from oci.client import Client
    from oci.errors import OciError
    from oci.ref import parse
    from oci.transport_cpython import Transport

    port = int(registry_host.rsplit(":", 1)[1])
    transport = Transport(timeout=60)
    client = Client(transport, log=lambda m: say(f"  registry: {m}"))
    entries = []
    try:
        for a in arches.ARCHES:
            kernel, release = debian.kernel_image(a.debian)
            ref = parse(f"{registry_host}/{INDEX_REF}-{a.go}")
            digest = push_artifact(client, ref, f"linux/{a.go}", {"kernel": kernel, "initrd": demo_initrd(a)})
            say(f"  pushed {pinned(ref, digest)} (Debian {release} + demo initramfs)")
            entries.append((f"linux/{a.go}", ref))
        index = parse(f"{registry_host}/{INDEX_REF}")
        say(f"  pushed {pinned(index, push_index(client, index, entries))} (multi-arch index)")
        with tempfile.TemporaryDirectory(prefix="cloudboot-demo-plan-") as tmp:
            plan_file = Path(tmp) / "demo-plan.hcl"
            plan_file.write_text(PLAN.replace("GUEST", f"{GUEST_HOST}:{port}"))
            plan = parse(f"{registry_host}/{PLAN_REF}")
            say(f"  pushed {pinned(plan, push_plan(client, plan, plan_file))} (the plan: a menu of two targets)")
    except OciError as exc:
        raise CloudBootError(f"demo registry {registry_host}: {exc}") from None
    finally:
        transport.close()
    return Published(registry_host, port)


@contextlib.contextmanager
def registry(say: Callable[[str], None] = _stderr) -> Iterator[Published]:
    """A throw-away registry with the demo published in it; stopped and its storage removed on exit."""
    from cloudboot.registry.local import serving

    work = Path(tempfile.mkdtemp(prefix="cloudboot-demo-"))
    try:
        with serving(work) as reg:
            say(f"registry: docker-registry on {reg.host} (pid {reg.proc.pid}, storage {work}); the guest "
                f"reaches it as {GUEST_HOST}:{reg.port}")
            yield publish(reg.host, say)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def machine(iso: Path, arch: arches.Arch, bootfile: str | None, as_disk: bool = False, echo: bool = True,
            memory_mb: int | None = None):
    """A (not yet started) QEMU booting the medium `iso` as a CD (or, `as_disk`, as a virtio disk), one NIC on
    user networking whose DHCP hands out `bootfile` (None: no boot file name)."""
    from cloudboot.harness.machine import Machine

    netdev = "user" + (f",bootfile={bootfile}" if bootfile else "")
    return Machine(arch.name, iso=None if as_disk else iso, disks=[iso] if as_disk else [], nics=1, netdev=netdev,
                   echo=echo, memory_mb=memory_mb, readonly_disks=True)


@dataclass
class Checked:
    """What `check` saw: where the init said the plan came from, and when things happened (seconds after QEMU
    started: "plan source", "menu", then "target up" or "plan fetched")."""

    source: str
    marks: dict[str, float]


_MENU = "type a choice"


def check(vm, timeout: float = 900) -> Checked:
    """Watch a started demo VM: the plan's source line, the menu (answered with Enter: the default target), then
    the target's marker. CloudBootError with the console's tail
    on a FATAL line, the firmware giving up, or a timeout."""
    from cloudboot.harness.machine import HarnessTimeout

    deadline = time.monotonic() + timeout
    marks: dict[str, float] = {}

    def left() -> float:
        return max(1.0, deadline - time.monotonic())

    def failed(text: str) -> CloudBootError:
        return CloudBootError(f"{vm.arch}: {text.split('FATAL: ', 1)[-1]}\n{vm.tail()}")

    events = re.compile(re.escape(_MENU.encode()) + b"|" + re.escape(MARKER.encode()) + b"|FATAL: [^\r\n]*")
    try:
        line = vm.expect_line(r"cloud-boot: (\[.*\] plan: \S+ \S+ from |.*FATAL: )|nothing bootable found",
                              left())
        if "plan: " not in line.text:
            raise failed(line.text)
        marks["plan source"] = line.at
        source = line.text.split(" from ", 1)[1]
        while True:
            event = vm.expect(events, left()).group(0).decode("utf-8", "replace")
            now = time.monotonic() - vm.t0
            if event == _MENU:
                marks.setdefault("menu", now)
                vm.send("\n")
            elif not event.startswith("FATAL: "):
                marks["target up"] = now
                return Checked(source, marks)
            else:
                raise failed(event)
    except HarnessTimeout as exc:
        raise CloudBootError(str(exc)) from None


@contextlib.contextmanager
def _signals_end_the_demo() -> Iterator[None]:
    """SIGTERM and SIGHUP end the demo like Ctrl-C does (KeyboardInterrupt: every `finally` runs)."""
    def stop(signum, frame):
        raise KeyboardInterrupt

    saved = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)


def _interactive(vm) -> int:
    """QEMU on this terminal (its serial console); the terminal's settings restored afterwards."""
    import subprocess

    saved = None
    try:
        import termios

        saved = termios.tcgetattr(0) if sys.stdin.isatty() else None
    except (ImportError, OSError):
        pass
    try:
        return subprocess.call(vm.command())
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSANOW, saved)


def run(iso: Path, arch_name: str, *, check_only: bool = False, as_disk: bool = False,
        timeout: float = 900, memory_mb: int | None = None, say: Callable[[str], None] = _stderr) -> int:
    """The demo: registry, publish, boot `iso` on `arch_name`; interactive unless `check_only`. 0 on success."""
    from cloudboot.run import which

    try:
        arch = arches.get(arch_name)
    except arches.ArchError as exc:
        raise CloudBootError(f"--arch: {exc}") from None
    iso = Path(iso)
    if not iso.is_file():
        raise CloudBootError(f"{iso}: no such file: build the medium first (make iso)")
    which(arch.qemu, f"booting the demo on {arch.name}")
    started = time.monotonic()
    with _signals_end_the_demo():
        with registry(say) as pub:
            say(f"booting {iso} on {arch.name} as a {'disk' if as_disk else 'CD'}; DHCP hands out the boot file "
                f"name {pub.bootfile}" + ("" if check_only else "; Ctrl-C quits"))
            vm = machine(iso, arch, pub.bootfile, as_disk=as_disk, echo=check_only, memory_mb=memory_mb)
            try:
                if not check_only:
                    return _interactive(vm)
                vm.start()
                say(f"qemu: pid {vm.proc.pid}")
                seen = check(vm, timeout)
            finally:
                vm.kill()
    shown = ", ".join(f"{k} {v:.1f}s" for k, v in seen.marks.items())
    say(f"\ndemo check passed on {arch.name}: plan from {seen.source}; {shown} after QEMU started "
        f"({time.monotonic() - started:.0f}s in all)")
    return 0
