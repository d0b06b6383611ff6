"""One QEMU virtual machine, with EDK2 or QEMU's direct kernel boot: start, serial console, expect, QMP, shutdown,
always cleaned up."""

from __future__ import annotations

import asyncio
import atexit
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import arches
from cloudboot.errors import CloudBootError
from cloudboot.harness import console, esp
from cloudboot.harness.firmware import Firmware, find_firmware
from cloudboot.run import which

T = TypeVar("T")
_LIVE: weakref.WeakSet = weakref.WeakSet()
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
#: A Linux guest's RCU report that a vCPU's timer never fired: "rcu: ... kthread timer wakeup didn't happen for N
#: jiffies" / "Possible timer handling issue on cpu=N". Seen under TCG on a loaded host (QEMU 10.0, a halted vCPU
#: not woken), twice in hundreds of boots; tasks whose timers sit on that vCPU never wake, so waiting on is useless.
_TIMER_LOST = re.compile(rb"rcu: .*(?:timer wakeup didn't happen|Possible timer handling issue)")


def _escape(m: re.Match) -> str:
    return f"\\x{ord(m.group(0)):02x}"


@atexit.register
def _kill_leftovers() -> None:
    for m in list(_LIVE):
        m.kill()


class HarnessTimeout(CloudBootError):
    """Something expected on the console did not come in time; the message carries the transcript."""


class GuestStalled(HarnessTimeout):
    """The guest kernel reported that one of its vCPUs stopped taking timer interrupts (_TIMER_LOST): a fault of
    the emulator, not of what the guest runs. The test suite runs a test that fails with it once more."""


@dataclass
class Line:
    """A console line `expect_line` matched (CR/LF stripped), and when it saw it (seconds after QEMU started)."""

    text: str
    at: float


class Machine:
    """A QEMU guest booting EDK2 and then an EFI app (`efi`, via QEMU's kernel loader so LoadOptions can be
    set, or from a generated ESP with `esp=True`), a disk image or an ISO; or, with `uefi=False`, a Linux
    kernel booted by QEMU itself (`extra_kernel`).

    Disk n is a virtio disk with serial `dn` (/sys/block/vdX/serial in a Linux guest), writable unless
    `readonly_disks`. Each of the `nics` virtio NICs sits on `-netdev <netdev>`: QEMU's user networking by
    default (the host's 127.0.0.1 is 10.0.2.2; `user,bootfile=REF` makes its DHCP hand out a boot file name),
    or any other backend (e.g. `socket,udp=...` for a link where no DHCP server answers). Use as a context
    manager: QEMU is killed on exit whatever happened.

    `vars_file`: the firmware's variable store lives in that file (copied from the template when missing) and
    outlives the VM, so boot entries persist from one Machine to the next. `bootindex=False` gives no device
    a bootindex: QEMU then sends no "bootorder" and OVMF boots by its own BootOrder variable (with one, it
    rewrites BootOrder from QEMU's list on every boot and drops entries that do not match, such as a
    HD()-relative one on a device listed later).
    """

    def __init__(self, arch: str, *, efi: Path | None = None, append: str | None = None, esp: bool = False,
                 disks: list[Path] = (), iso: Path | None = None, nics: int = 0, memory_mb: int | None = None,
                 extra: list[str] = (), echo: bool = False, firmware: Firmware | None = None,
                 extra_kernel: tuple[Path, Path, str] | None = None, linux: bool = True, uefi: bool = True,
                 readonly_disks: bool = False, vars_file: Path | None = None, bootindex: bool = True,
                 netdev: str = "user") -> None:
        self.profile = arches.get(arch)
        self.arch = self.profile.name
        self.efi, self.append, self.use_esp = efi, append, esp
        self.disks, self.iso, self.nics, self.netdev = [Path(d) for d in disks], iso, nics, netdev
        self.memory_mb = memory_mb or self.profile.memory_mb
        self.extra, self.echo = list(extra), echo
        self.firmware = firmware  # default: find_firmware(arch)
        # (kernel, initrd, cmdline): handed to EDK2 (over fw_cfg; on arm64 EFI stub + ACPI), or with uefi=False
        # booted by QEMU directly (on arm64: QEMU's DTB, no EFI)
        self.extra_kernel = extra_kernel
        self.linux = linux  # machine options for Linux guests (riscv64: acpi=off); False: the plain machine
        self.uefi = uefi  # False: no EDK2 in pflash, QEMU's own boot (direct kernel boot needs `extra_kernel`)
        self.readonly_disks = readonly_disks
        self.vars_file, self.bootindex = vars_file, bootindex
        self._workdir: Path | None = None
        self.proc: subprocess.Popen | None = None
        self.raw = bytearray()
        self._eof = False  # the reader has seen the end of QEMU's output: the transcript is complete
        self._cond = threading.Condition()
        self._pos = 0  # expect() consumes the transcript up to here
        self._echoed = 0
        self.t0 = 0.0
        self.marks: dict[str, float] = {}

    # ---- lifecycle ----
    def command(self) -> list[str]:
        """The QEMU command line (also what `cloud-boot qemu` echoes)."""
        p = self.profile
        machine = f"{p.machine},{p.linux_machine_options}" if self.linux and p.linux_machine_options else p.machine
        cmd = [which(p.qemu, f"running {self.arch} guests"), "-M", machine, *p.cpu,
               "-m", str(self.memory_mb),
               # not -nographic: it multiplexes the monitor on stdio, and its Ctrl-A escape eats the raw REPL's.
               "-display", "none", "-serial", "stdio", "-monitor", "none",
               "-qmp", f"unix:{self.qmp_path},server=on,wait=off"]
        if self.uefi:
            fw = self.firmware or find_firmware(self.arch)
            vars_copy = Path(self.vars_file) if self.vars_file else self.workdir / "vars.fd"
            if not vars_copy.exists():
                shutil.copyfile(fw.vars, vars_copy)
            cmd += ["-boot", "menu=on,splash-time=0",
                    "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={fw.code}",
                    "-drive", f"if=pflash,format=raw,unit=1,file={vars_copy}"]
        index = 1
        if self.efi and self.use_esp:
            image = esp.make_esp(self.workdir / "esp.img", {f"EFI/BOOT/{p.efi_name}": Path(self.efi)})
            cmd += _disk(image, "esp", index if self.bootindex else None, serial=False)
            index += 1
        elif self.extra_kernel:
            kernel, initrd, cmdline = self.extra_kernel
            cmd += ["-kernel", str(kernel), "-initrd", str(initrd), "-append", cmdline]
        elif self.efi:
            cmd += ["-kernel", str(self.efi)]
            if self.append is not None:
                cmd += ["-append", self.append]
        if self.iso:
            cmd += ["-drive", f"if=none,id=cd,format=raw,media=cdrom,readonly=on,file={self.iso}",
                    "-device", "virtio-scsi-pci,id=scsi",
                    "-device", "scsi-cd,drive=cd" + (f",bootindex={index}" if self.bootindex else "")]
            index += 1
        for n, disk in enumerate(self.disks):
            # boot indexes are for OVMF (see _disk); without EDK2 nothing reads them
            cmd += _disk(disk, f"d{n}", index if self.uefi and self.bootindex else None,
                         readonly=self.readonly_disks)
            index += 1
        for n in range(self.nics):
            cmd += ["-netdev", f"{self.netdev},id=n{n}", "-device", f"virtio-net-pci,netdev=n{n},romfile="]
        if not self.nics:
            cmd += ["-net", "none"]
        return cmd + self.extra

    @property
    def workdir(self) -> Path:
        """The VM's scratch directory (vars copy, ESP image, QMP socket), made on first use and removed by kill()
        or, for a Machine that was only asked for its command line, when it is collected or Python exits."""
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix=f"cloudboot-vm-{self.arch}-"))
            weakref.finalize(self, shutil.rmtree, self._workdir, True)
        return self._workdir

    @property
    def qmp_path(self) -> Path:
        return self.workdir / "qmp.sock"

    def start(self) -> Machine:
        """Start QEMU and the serial reader."""
        cmd = self.command()
        # Started from the main thread, QEMU also dies with us when we are killed without running atexit
        # (PR_SET_PDEATHSIG fires when the forking *thread* ends, so only the main thread may ask for it).
        main = threading.current_thread() is threading.main_thread() and sys.platform == "linux"
        self.t0 = time.monotonic()
        # Its own session: a terminal's Ctrl-C reaches only us, and our `finally`s stop QEMU (it must not die first
        # and look like a failed boot).
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     preexec_fn=_die_with_parent if main else None, start_new_session=True)
        _LIVE.add(self)
        self._eof = False
        threading.Thread(target=self._reader, daemon=True).start()
        return self

    def __enter__(self) -> Machine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()

    def _reader(self) -> None:
        fd = self.proc.stdout.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            with self._cond:
                if chunk:
                    self.raw += chunk
                else:
                    self._eof = True
                self._cond.notify_all()
            if not chunk:
                return
            if self.echo:
                self._echo()

    def _echo(self) -> None:
        # Clean the whole transcript, not the chunk: escape sequences and noise lines span chunk boundaries.
        with self._cond:
            text = console.clean(bytes(self.raw))
        hold = text.rfind(b"\x1b", max(0, len(text) - 16))
        upto = hold if hold >= self._echoed else len(text)
        if upto > self._echoed:
            sys.stdout.write(text[self._echoed:upto].decode("utf-8", "replace"))
            sys.stdout.flush()
            self._echoed = upto

    def kill(self) -> None:
        """Stop QEMU now (no-op if it has exited) and remove the VM's files."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)

    def wait(self, timeout: float) -> int:
        """QEMU's exit status, waiting up to `timeout` seconds (then killed, HarnessTimeout)."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise HarnessTimeout(f"{self.arch}: QEMU still running after {timeout:.0f} s\n{self.tail()}") from None

    def quit(self) -> int:
        """Clean shutdown through QMP `quit`; returns QEMU's exit status."""
        if self.proc.poll() is None:
            asyncio.run(_qmp(self.qmp_path, "quit"))
        return self.wait(30)

    def qmp(self, command: str, **args: object) -> object:
        """Run one QMP command and return its result."""
        return asyncio.run(_qmp(self.qmp_path, command, args))

    # ---- console ----
    @property
    def text(self) -> str:
        """The whole console transcript so far, cleaned of escapes and firmware noise."""
        with self._cond:
            raw = bytes(self.raw)
        return console.clean(raw).decode("utf-8", "replace")

    def tail(self, n: int = 60) -> str:
        """The last n lines of the transcript, for error messages (control characters such as the raw REPL's
        EOT shown as `\\xNN`)."""
        lines = self.text.replace("\r\n", "\n").split("\n")[-n:]
        return "--- console (last lines) ---\n" + "\n".join(_CONTROL.sub(_escape, line) for line in lines)

    def expect(self, pattern: str | bytes | re.Pattern, timeout: float = 60, mark: str | None = None) -> re.Match:
        """Wait until `pattern` (regex or plain text) appears after the previous match; returns the match.

        `mark` records the seconds since QEMU started under that name (see `marks`)."""
        if isinstance(pattern, str):
            pattern = re.compile(re.escape(pattern.encode()))
        elif isinstance(pattern, bytes):
            pattern = re.compile(re.escape(pattern))
        m = self._wait(lambda text: pattern.search(text, self._pos), timeout, pattern.pattern)
        self._pos = m.end()
        if mark:
            self.marks[mark] = time.monotonic() - self.t0
        return m

    def expect_line(self, pattern: str, timeout: float = 60) -> Line:
        """Wait until a whole console line (escapes and CR/LF stripped) after the previous match matches the
        regex `pattern` (searched within the line, so `^` and `$` anchor to it); returns that line."""
        rx = re.compile(pattern)

        def find(text: bytes) -> tuple[str, int] | None:
            start = self._pos
            # A line still without its newline may be incomplete; once QEMU's output has ended (its exit alone is
            # not enough: the reader may not have drained the pipe yet) it is all there is.
            while (end := text.find(b"\n", start)) >= 0 or (start < len(text) and self._eof):
                stop = len(text) if end < 0 else end + 1
                line = text[start:stop].rstrip(b"\r\n").decode("utf-8", "replace")
                if rx.search(line):
                    return line, stop
                start = stop
            return None

        line, self._pos = self._wait(find, timeout, pattern)
        return Line(line, time.monotonic() - self.t0)

    def lines(self) -> list[str]:
        """The transcript so far as lines (escapes and CR/LF stripped)."""
        return [line.rstrip("\r") for line in self.text.split("\n")]

    def _wait(self, find: Callable[[bytes], T | None], timeout: float, what: str | bytes) -> T:
        """The first non-None `find(cleaned transcript)`, tried again as output arrives; on timeout or QEMU's
        exit the VM is killed and HarnessTimeout raised."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                text = console.clean(bytes(self.raw))
                found = find(text)
                if found is not None:
                    return found
                if _TIMER_LOST.search(text):
                    self.kill()
                    raise GuestStalled(f"{self.arch}: waiting for {what!r}: a vCPU stopped taking timer interrupts "
                                       f"(the guest kernel's RCU report)\n{self.tail()}")
                left = deadline - time.monotonic()
                if left <= 0 or self._eof:  # not at QEMU's exit: what it wrote last may still be in the pipe
                    break
                self._cond.wait(min(left, 0.5))
        why = "QEMU exited" if self._eof or self.proc.poll() is not None else f"timed out after {timeout:.0f} s"
        self.kill()
        raise HarnessTimeout(f"{self.arch}: waiting for {what!r}: {why}\n{self.tail()}")

    def send(self, data: bytes | str, timeout: float = 60) -> None:
        """Type bytes on the serial console (in pieces of at most 256 bytes, never blocking for longer than
        `timeout` seconds in all if QEMU stops reading its input: then it is killed, HarnessTimeout)."""
        if isinstance(data, str):
            data = data.encode()
        fd = self.proc.stdin.fileno()
        deadline = time.monotonic() + timeout
        view = memoryview(data)
        while view:
            if self.proc.poll() is not None:
                raise HarnessTimeout(f"{self.arch}: QEMU has exited; cannot send input\n{self.tail()}")
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise HarnessTimeout(f"{self.arch}: QEMU took no serial input for {timeout:.0f} s "
                                     f"({len(view)} of {len(data)} bytes unsent)\n{self.tail()}")
            _, writable, _ = select.select([], [fd], [], min(left, 0.5))
            if writable:
                try:
                    n = os.write(fd, view[:256])
                except BrokenPipeError:
                    raise HarnessTimeout(f"{self.arch}: QEMU has exited; cannot send input\n{self.tail()}") from None
                view = view[n:]

    @property
    def pos(self) -> int:
        """Offset in the cleaned transcript (bytes) up to which `expect` has consumed it."""
        return self._pos


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the parent goes away (Linux prctl PR_SET_PDEATHSIG)."""
    import ctypes
    import signal

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG


def _disk(path: Path, node: str, bootindex: int | None, readonly: bool = False, serial: bool = True) -> list[str]:
    # Once any device has a bootindex, OVMF connects only devices that have one: give every disk one.
    from cloudboot.diskimage import detect

    fmt = {"qcow2": "qcow2", "udif": "dmg", "raw": "raw"}[detect(str(path))]
    readonly = readonly or fmt == "dmg"  # QEMU reads UDIF only
    drive = f"if=none,id={node},format={fmt},file={path}" + (",readonly=on" if readonly else "")
    device = f"virtio-blk-pci,drive={node}" + (f",bootindex={bootindex}" if bootindex is not None else "")
    return ["-drive", drive, "-device", device + (f",serial={node}" if serial else "")]


async def _qmp(sock: Path, command: str, args: dict | None = None) -> object:
    from qemu.qmp import QMPClient

    client = QMPClient("cloud-boot")
    for _ in range(100):
        if sock.exists():
            break
        await asyncio.sleep(0.05)
    await client.connect(str(sock))
    try:
        return await client.execute(command, args or None)
    finally:
        try:
            await client.disconnect()
        except (EOFError, ConnectionError):
            pass  # after `quit` QEMU closes the socket first
