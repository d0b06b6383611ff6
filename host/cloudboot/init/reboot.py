r"""Path C, the reboot sink (`cloudboot.exit=reboot`, or `exit = "reboot"` in the plan): stage the target on
the cache ESP, point a boot entry at it, reboot into it (REFERENCE.md §5.2).

  1. the kernel must be something firmware can start: an EFI-stub PE of this machine's type (x86 bzImage,
     arm64/riscv64 Image with EFI stub, EFI zboot, which unpacks itself); a gzip or zstd stream around such
     an image is unpacked here first, so the firmware never needs our loader;
  2. the cache ESP is found and mounted (cloudboot.init.esp);
  3. `\EFI\Linux\<safe>-vmlinuz.efi` and `<safe>-initrd` are written atomically: both as `<name>.part`,
     fsync'ed, then both renamed, then the directory fsync'ed; the free space is checked first; the ESP is
     unmounted (FAT flushed);
  4. only then the entry: `Boot####` = EFI_LOAD_OPTION `cloud-boot <target>`,
     `HD(slot,GPT,guid,start,size)/File(\EFI\Linux\<safe>-vmlinuz.efi)`, arguments
     `initrd=\EFI\Linux\<safe>-initrd <cmdline>`; then BootOrder gets it first (or, with
     cloudboot.reboot.next=1, BootNext: one boot only);
  5. reboot(LINUX_REBOOT_CMD_RESTART).
A power cut anywhere leaves a bootable machine: before step 4 the old entry (its files are whole: renames
replace complete files) or the medium boots; after it, the new target.

The entry number: an existing cloud-boot entry's, else Boot0001 when free (the original always wrote
Boot0001, over whatever was there), else the lowest free one; `cloudboot.reboot.bootnum=XXXX` forces one.
"""

from __future__ import annotations

import errno
import gzip
import os
import time

from cloudboot.init import efivars, esp, linux
from cloudboot.init.errors import InitError
from cloudboot.init.log import log, phase

SAFE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
LINUX_DIR = "EFI/Linux"
CHUNK = 1 << 20


def sanitize(name: str) -> str:
    """The original's file-name rule: every character outside [A-Za-z0-9._-] becomes `_`."""
    return "".join(c if c in SAFE_CHARS else "_" for c in name)


def firmware_paths(safe: str, initrd: bool) -> tuple[str, str]:
    r"""(`\EFI\Linux\<safe>-vmlinuz.efi`, `\EFI\Linux\<safe>-initrd` or "" without an initrd)."""
    base = "\\" + LINUX_DIR.replace("/", "\\") + "\\" + safe
    return base + "-vmlinuz.efi", (base + "-initrd" if initrd else "")


def _pe_machine(head: bytes) -> int | None:
    if head[:2] != b"MZ" or len(head) < 0x40:
        return None
    at = int.from_bytes(head[0x3C:0x40], "little")
    if at + 6 > len(head) or head[at:at + 4] != b"PE\0\0":
        return None
    return int.from_bytes(head[at + 4:at + 6], "little")


def bootable_kernel(path: str, machine: str, workdir: str) -> str:
    """`path`, or an unpacked copy in `workdir`, that firmware can start on `machine`; InitError otherwise."""
    import arches
    from cloudboot.init.kexec import describe

    want = arches.get(machine)
    with open(path, "rb") as f:
        head = f.read(4096)
    if head[:2] == b"\x1f\x8b" or head[:4] == b"\x28\xb5\x2f\xfd":
        kind = "gzip" if head[:2] == b"\x1f\x8b" else "zstd"
        try:
            with open(path, "rb") as f:
                packed = f.read()
            if kind == "gzip":
                data = gzip.decompress(packed)
            else:
                from compat import zstd

                data = bytes(zstd.decompress_bytearray(packed, max_output=1 << 30))
        except Exception as exc:  # noqa: BLE001 - zlib.error, EOFError, ZstdError: all mean a corrupt stream
            raise InitError(f"reboot-sink: the {kind} kernel {path} does not unpack: {exc}") from None
        out = os.path.join(workdir, "kernel-unpacked.efi")
        with open(out, "wb") as f:
            f.write(data)
        log(f"reboot-sink: unpacked {kind} kernel {len(packed)} -> {len(data)} bytes (firmware starts PE images)")
        path, head = out, data[:4096]
    got = _pe_machine(head)
    if got is None:
        raise InitError(f"reboot-sink: {path} is not an EFI-stub kernel (no PE header), firmware cannot start it: "
                        f"{describe(head)}; Path C needs a kernel built with CONFIG_EFI_STUB")
    if got != want.pe_machine:
        other = arches.by_pe_machine(got)
        raise InitError(f"reboot-sink: {path} is a PE image for {other.name if other else hex(got)}, "
                        f"this machine is {want.name}")
    return path


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_parts(pairs: list[tuple[str, str]]) -> None:
    """Copy each (src, dest) to `dest.part` and fsync it; then rename every .part to its name back to back and
    fsync the directory. Any failure removes the .part files: a final name only ever holds a whole file, and
    a kernel and its initrd are replaced together (only a power cut between the two renames could pair a new
    kernel with the old initrd of the same target)."""
    parts = [(src, dest, dest + ".part") for src, dest in pairs]
    try:
        for src, _, tmp in parts:
            with open(src, "rb") as fin, open(tmp, "wb") as fout:
                while chunk := fin.read(CHUNK):
                    fout.write(chunk)
                fout.flush()
                os.fsync(fout.fileno())
        for _, dest, tmp in parts:
            os.replace(tmp, dest)
        for d in sorted({os.path.dirname(dest) for _, dest, _ in parts}):
            _fsync_dir(d)
    except BaseException:
        for _, _, tmp in parts:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        raise


def stage(root: str, target: str, kernel: str, initrd: str | None) -> tuple[str, str]:
    r"""Write the target's files under `root` (the mounted ESP); returns their firmware paths. InitError when
    they do not fit, or on any write error (nothing half-written is left under a final name)."""
    safe = sanitize(target)
    kfw, ifw = firmware_paths(safe, bool(initrd))
    d = os.path.join(root, LINUX_DIR)
    files = [(kernel, kfw)] + ([(initrd, ifw)] if initrd else [])
    try:
        os.makedirs(d, exist_ok=True)
        for entry in os.listdir(d):  # a power cut while staging leaves these; nothing else names files so
            if entry.endswith(".part") and ("-vmlinuz.efi" in entry or "-initrd" in entry):
                os.unlink(os.path.join(d, entry))
                log(f"reboot-sink: removed the leftover {entry}")
        st = os.statvfs(d)
        free = st.f_bavail * st.f_frsize
        sizes = [os.path.getsize(src) for src, _ in files]
        need = sum(s + 2 * st.f_bsize for s in sizes)  # whole clusters, and a directory entry's worth
        if need > free:
            raise InitError(f"reboot-sink: the cache ESP has {free >> 20} MiB free, staging {target!r} needs "
                            f"{need >> 20} MiB (kernel {sizes[0]} bytes"
                            + (f", initrd {sizes[1]} bytes" if initrd else "")
                            + "): make a bigger cache disk (cloud-boot cache-disk --size) or remove other "
                              f"targets' files from \\{LINUX_DIR.replace('/', chr(92))}")
        _write_parts([(src, os.path.join(root, fw.lstrip("\\").replace("\\", "/"))) for src, fw in files])
    except OSError as exc:
        what = "the cache ESP is full" if exc.errno == errno.ENOSPC else exc.strerror
        raise InitError(f"reboot-sink: staging {target!r} on the cache ESP failed: {what}"
                        + (f" ({exc.filename})" if exc.filename else "")) from None
    return kfw, ifw


def entry_number(store: efivars.Efivarfs, forced: str = "") -> tuple[int, str]:
    """(number, why) of the Boot#### to write (see the module text)."""
    if forced:
        return int(forced, 16), "cloudboot.reboot.bootnum"
    ours = store.ours()
    if ours:
        return ours[0], "our earlier entry"
    taken = set(store.boot_entries())
    if 1 not in taken:
        return 1, "free"
    free = next(n for n in range(2, 0x10000) if n not in taken)
    return free, "Boot0001 is taken by another entry"


def write_entry(store: efivars.Efivarfs, payload: bytes, num: int, once: bool) -> None:
    """Boot#### = payload, then BootOrder with it first (or BootNext = it, when `once`)."""
    name = efivars.boot_name(num)
    old = store.read(name)
    if old is not None and old == (efivars.NV_BS_RT, payload):  # every write uses up variable store until the
        log(f"reboot-sink: {name} already holds this entry ({len(payload)} bytes)")  # firmware reclaims it
    else:
        store.write(name, payload)
        log(f"reboot-sink: {name} written ({len(payload)} bytes)")
    if once:
        store.write("BootNext", num.to_bytes(2, "little"))
        log(f"reboot-sink: BootNext set to {num:04X} (one boot; BootOrder unchanged)")
        return
    order = store.boot_order()
    new = efivars.prepend(order, num)
    if new == order:
        log(f"reboot-sink: BootOrder already starts with {num:04X}")
        return
    store.set_boot_order(new)
    log(f"reboot-sink: BootOrder prefixed with {num:04X}")


def run(target, cmd: dict[str, str], workdir: str, disks_fn, vars_root: str = efivars.EFIVARS,
        machine: str | None = None, reboot=None) -> None:
    """The sink end to end for a prepared target (name, kernel, initrd, cmdline); returns only by raising."""
    from cloudboot.init.cmdline import duration

    log(f"reboot-sink: target={target.name} kernel={target.kernel} initrd={target.initrd or ''}")
    log(f"reboot-sink: cmdline={target.cmdline}")
    store = efivars.Efivarfs(vars_root)
    try:
        store.names()  # the variables must be there before anything is staged
        store.boot_order()
    except efivars.EfiVarError as exc:
        raise InitError(f"reboot-sink: {exc}") from None
    kernel = bootable_kernel(target.kernel, machine or os.uname().machine, workdir)
    with phase("stage"):
        part = esp.find(disks_fn, duration(cmd.get("cloudboot.disk.wait", "10s")))
        root = esp.mount(part)
        try:
            kfw, ifw = stage(root, target.name, kernel, target.initrd)
        finally:
            esp.unmount(root)
    log(f"reboot-sink: staged kernel={kfw} initrd={ifw}")
    pause = duration(cmd.get("cloudboot.reboot.pause", "0"))
    if pause:
        log(f"reboot-sink: pausing {pause:g}s before the boot entry (cloudboot.reboot.pause)")
        time.sleep(pause)
    payload = efivars.boot_entry(target.name, kfw, ifw, target.cmdline, part.hd())
    try:
        num, why = entry_number(store, cmd.get("cloudboot.reboot.bootnum", ""))
        log(f"reboot-sink: entry Boot{num:04X} ({why})")
        write_entry(store, payload, num, cmd.get("cloudboot.reboot.next") == "1")
    except efivars.EfiVarError as exc:
        raise InitError(f"reboot-sink: {exc}; the staged files stay on the cache ESP and the boot order is as "
                        "it was") from None
    log("reboot-sink: rebooting")
    os.sync()
    try:
        (reboot or linux.reboot)(linux.LINUX_REBOOT_CMD_RESTART)
    except OSError as exc:
        raise InitError(f"reboot(LINUX_REBOOT_CMD_RESTART) failed: {exc.strerror}") from None
    raise InitError("reboot(LINUX_REBOOT_CMD_RESTART) returned")
