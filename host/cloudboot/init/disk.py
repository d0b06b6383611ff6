"""Disk mode (`cloudboot.disk=`): find the device, read the distro's kernel and initrd through the portable
core (diskfs: GPT/MBR, ext4/XFS/btrfs/ZFS, LUKS1/LUKS2 unlocked in userland, never mounted), ready for kexec.

ZFS (`cloudboot.disk=<pool>/<dataset>`, or any name with cloudboot.disk.fs=zfs): the pool's devices are found by
their labels on every disk and partition, a missing mirror or raidz member is tolerated, child datasets appear
at their mountpoints, and the kernel is discovered as elsewhere (the original required disk.kernel/initrd); an
encrypted dataset opens with `cloudboot.disk.zfs-passphrase=` (like the LUKS one, best kept in the metadata).

A LUKS device is opened with `cloudboot.disk.luks-passphrase=`, which may come from the metadata URL (the
caller merged it into `cmd`: better than the command line, which the kernel prints); `cloudboot.disk.luks-limits=`
raises the header limits (`max_memory_kib=8388608,...`). The passphrase is never logged.

Device specs as the original (REFERENCE.md §4.1): `/dev/...` verbatim, or LABEL=/UUID=/PARTLABEL=/PARTUUID=
over every partition of every whole disk (whole-disk filesystems count too); when nothing matches, the
error lists every device seen. Kernel discovery is bootplan.discover: BLS Type #1 entries first, then
distro names with a version-aware order (rescue images last), unless cloudboot.disk.kernel= pins a path.
"""

from __future__ import annotations

import os
import time

from cloudboot.init.errors import InitError
from cloudboot.init.log import log
from cloudboot.init.target import Target

#: Block devices that are never a boot disk.
SKIP_PREFIXES = ("loop", "ram", "zram", "fd", "nbd", "dm-", "md")


def whole_disks(sysfs: str = "/sys/block") -> list[str]:
    """/dev paths of the whole disks the kernel knows (sorted)."""
    try:
        names = sorted(os.listdir(sysfs))
    except OSError:
        return []
    return ["/dev/" + n for n in names if not n.startswith(SKIP_PREFIXES)]


def _open(path: str):
    from diskfs.blockdev import FileDevice

    return FileDevice(path)


def seen(disks: list) -> list[str]:
    """One line per disk and partition: what is on it (the 'no match' listing)."""
    import diskfs
    from diskfs.probe import probe

    out = []
    for disk in disks:
        try:
            parts = diskfs.partitions(disk)
        except (diskfs.DiskfsError, OSError) as exc:
            out.append(f"{disk.name}: <partition table error: {exc}>")
            continue
        for part in parts:
            where = disk.name if part.number == 0 else f"{disk.name} partition {part.number}"
            try:
                fstype, label, uuid = probe(part.device(disk))
            except (diskfs.DiskfsError, OSError) as exc:
                out.append(f"{where}: <read error: {exc}>")
                continue
            extra = f" partlabel={part.name!r} partuuid={part.part_guid}" if part.part_guid else ""
            out.append(f"{where}: {fstype or '<unknown-fs>'}{{label={label!r} uuid={uuid}}}{extra}")
    return out


def _report_once(reported: set[str], line: str) -> None:
    """Log a damaged or unreadable device once, not on every poll of the wait loop."""
    if line not in reported:
        reported.add(line)
        log(line)


def find_device(spec: str, wait: float, disks_fn=whole_disks):
    """(device, description) for a spec, waiting up to `wait` seconds for it to appear."""
    from diskfs import FsError
    from diskfs.probe import resolve

    deadline = time.monotonic() + wait
    reported: set[str] = set()
    while True:
        if spec.startswith("/"):
            if os.path.exists(spec):
                return _open(spec), spec
            disks = []
        else:
            disks = []
            for path in disks_fn():
                try:
                    disks.append(_open(path))
                except (OSError, FsError) as exc:  # FileDevice says NotFound, naming the path and why
                    _report_once(reported, f"disk: cannot open {path}: {exc}")
            dev, desc = resolve(disks, spec, report=lambda m: _report_once(reported, f"disk: {m}"))
            if dev is not None:
                return dev, desc
        if time.monotonic() >= deadline:
            listing = seen(disks) if disks else [f"(no disks: {', '.join(disks_fn()) or 'none in /sys/block'})"]
            raise InitError(f"no device matches cloudboot.disk={spec} after {wait:g}s; seen: "
                            + "; ".join(listing))
        time.sleep(0.1)


def _copy_out(fs, path: str, dest: str) -> int:
    """Copy a file of a diskfs filesystem to `dest` (one read straight into a buffer of the file's size)."""
    with fs.open(path) as f:
        buf = bytearray(f.size)
        n = f.readinto(memoryview(buf))
    if n != len(buf):
        raise InitError(f"{path}: read {n} of {len(buf)} bytes")
    with open(dest, "wb") as out:
        out.write(buf)
    return n


def need_crypto(what: str) -> None:
    """InitError naming the fix when this init was built without the crypto modules (the cloud medium's default:
    they do not fit its UKI size budget), before any passphrase is asked for."""
    from diskfs import crypto

    if not crypto.has_provider():
        raise InitError(f"{what}, but this init has no crypto modules (cryptography, argon2): build the medium "
                        "with `cloud-boot build --luks`")


def _luks_options(cmd: dict[str, str], where: str) -> dict:
    """diskfs.open options for a LUKS device: the passphrase and any raised limits (InitError without one)."""
    from cloudboot.disksecrets import luks_limits
    from cloudboot.errors import CloudBootError

    need_crypto(f"{where} is LUKS-encrypted")
    passphrase = cmd.get("cloudboot.disk.luks-passphrase", "")
    if not passphrase:
        raise InitError(f"{where} is LUKS-encrypted: set cloudboot.disk.luks-passphrase= (preferably in the "
                        "metadata, cloudboot.metadata.url=, rather than on the command line the kernel prints)")
    options: dict = {"passphrase": passphrase.encode()}
    limits = cmd.get("cloudboot.disk.luks-limits", "")
    if limits:
        try:
            options["luks_limits"] = luks_limits(limits.split(","))
        except CloudBootError as exc:
            raise InitError(f"cloudboot.disk.luks-limits: {exc}") from None
    return options


def _paired_initrd(fs, kernel: str) -> list[str]:
    """The initrd of a pinned kernel, paired by its version suffix (REFERENCE.md §4.2 step 4), logged."""
    from bootplan import discover

    found = discover.initrd_for(fs, kernel)
    log(f"disk: initrd for {kernel}: " + (f"{found[0]} (same version)" if found else
                                          "none of its version (set cloudboot.disk.initrd= to choose one)"))
    return found


def _distro_args(fs, kernel: str) -> str:
    """What the distro's GRUB would pass to `kernel` (bootplan.distroargs), with where it came from logged."""
    from bootplan import distroargs

    dataset = getattr(fs, "dataset", None)  # a ZFS root is named as Debian's zfs-initramfs reads it
    args, source = distroargs.find(fs, kernel, f"root=ZFS={dataset}" if dataset else f"root=UUID={fs.uuid_str}")
    log(f"disk: kernel arguments from {source}: {args}")
    return args


def prepare(cmd: dict[str, str], workdir: str = "/run/cloud-boot", disks_fn=whole_disks) -> Target:
    """Resolve cloudboot.disk=, open its filesystem, choose the kernel and initrd and copy them to workdir."""
    import diskfs
    from diskfs.probe import probe

    spec = cmd["cloudboot.disk"]
    fstype_wanted = cmd.get("cloudboot.disk.fs", "")
    name = zfs_name(cmd)
    if name is not None:
        return prepare_zfs(cmd, name, workdir, disks_fn)
    from cloudboot.init.cmdline import duration

    wait = duration(cmd.get("cloudboot.disk.wait", "10s"))
    dev, where = find_device(spec, wait, disks_fn)
    fstype, label, uuid = probe(dev)
    options = _luks_options(cmd, where) if fstype in ("luks1", "luks2") else {}
    if fstype_wanted and fstype and fstype not in ("luks1", "luks2") and fstype != fstype_wanted:
        raise InitError(f"cloudboot.disk.fs={fstype_wanted} but {where} holds {fstype}")
    try:
        fs = diskfs.open(dev, **options)
    except diskfs.DiskfsError as exc:
        raise InitError(f"{where}: {exc}") from None
    if options:
        log(f"disk: {where}: {fstype} label={label!r} uuid={uuid} unlocked")
        where, label, uuid = f"{where} ({fstype})", fs.label, fs.uuid_str
        if fstype_wanted and fs.TYPE != fstype_wanted:
            raise InitError(f"cloudboot.disk.fs={fstype_wanted} but {where} holds {fs.TYPE}")
        fstype = fs.TYPE
    log(f"disk: {where}: {fstype} label={label!r} uuid={uuid}")
    return _boot_files(fs, cmd, where, workdir)


def zfs_name(cmd: dict[str, str]) -> str | None:
    """The ZFS `<pool>[/<dataset>][@<snapshot>]` that cloudboot.disk= names (cloudboot.disk.fs=zfs, or a spec
    that is neither a path nor KEY=VALUE), or None."""
    spec = cmd.get("cloudboot.disk", "")
    if cmd.get("cloudboot.disk.fs") == "zfs":
        return spec.strip("/")
    if spec and not spec.startswith("/") and "=" not in spec:
        return spec
    return None


def find_pool(name: str, wait: float, disks_fn=whole_disks) -> list:
    """The devices (whole disks and partitions) whose ZFS labels name pool `name`, waiting up to `wait`
    seconds for the first; the pool's own GUID then picks the members, so a missing mirror leg is fine."""
    import diskfs
    from diskfs.zfslabel import pool as pool_of

    deadline = time.monotonic() + wait
    while True:
        found, seen = [], []
        for path in disks_fn():
            try:
                disk = _open(path)
                parts = [p.device(disk) for p in diskfs.partitions(disk)]
            except (OSError, diskfs.DiskfsError) as exc:
                log(f"disk: cannot read {path}: {exc}")
                continue
            for dev in parts:
                try:
                    got = pool_of(dev)
                except diskfs.DiskfsError:
                    got = None
                if got:
                    seen.append(f"{dev.name}: pool {got[0]!r}")
                if got and got[0] == name:
                    found.append(dev)
        if found:
            return found
        if time.monotonic() >= deadline:
            raise InitError(f"no device holds ZFS pool {name} after {wait:g}s; pools seen: "
                            + ("; ".join(seen) or "none"))
        time.sleep(0.1)


def prepare_zfs(cmd: dict[str, str], name: str, workdir: str, disks_fn=whole_disks) -> Target:
    """Disk mode on a ZFS dataset: the pool's devices gathered by label, the dataset opened (children at
    their mountpoints, so a separate /boot dataset is found), then the same kernel discovery as elsewhere."""
    import diskfs
    from cloudboot.init.cmdline import duration

    pool = name.split("/")[0].split("@")[0]
    devs = find_pool(pool, duration(cmd.get("cloudboot.disk.wait", "10s")), disks_fn)
    from diskfs import crypto

    secret = cmd.get("cloudboot.disk.zfs-passphrase", "")  # an encrypted dataset (keyformat=passphrase)
    try:
        fs = diskfs.open(devs[0], devices=devs[1:], dataset=name, passphrase=secret.encode() if secret else None)
    except diskfs.DiskfsError as exc:
        if isinstance(exc, crypto.NoProvider):
            need_crypto(f"ZFS {name} is encrypted")
        raise InitError(f"ZFS {name}: {exc}") from None
    info = fs.info()
    log(f"disk: ZFS pool {pool} ({info['devices']}, txg {info['txg']}): dataset {fs.dataset}, "
        f"mounted below: {info['mounted below']}")
    return _boot_files(fs, cmd, f"ZFS {fs.dataset}", workdir)


def _boot_files(fs, cmd: dict[str, str], where: str, workdir: str) -> Target:
    """The kernel and initrd (pinned, else BLS then distro names) copied to workdir, and the command line."""
    import diskfs
    from bootplan import discover

    pinned_kernel = cmd.get("cloudboot.disk.kernel", "")
    pinned_initrd = cmd.get("cloudboot.disk.initrd", "")
    options, source = "", "cloudboot.disk.kernel"
    try:
        if pinned_kernel:
            kernel, initrds = pinned_kernel, [pinned_initrd] if pinned_initrd else _paired_initrd(fs, pinned_kernel)
        else:
            found = discover.find(fs, log=lambda m: log(f"disk: {m}"))
            if not found:
                raise InitError(f"{where}: no kernel found (no BLS entry in /boot/loader/entries or "
                                "/loader/entries, no vmlinuz-* in /boot or /); set cloudboot.disk.kernel=")
            for c in found:
                log(f"disk: candidate {c.linux} ({c.source})")
            best = found[0]
            kernel, options, source = best.linux, best.options or "", best.source
            initrds = [pinned_initrd] if pinned_initrd else list(best.initrd)
        os.makedirs(workdir, exist_ok=True)
        kpath = os.path.join(workdir, "disk-kernel")
        size = _copy_out(fs, kernel, kpath)
        log(f"disk: kernel {kernel} ({size} bytes, {source})")
        ipath = None
        if initrds:
            ipath = os.path.join(workdir, "disk-initrd")
            total = 0
            with open(ipath, "wb") as out:
                for n, p in enumerate(initrds):
                    part = ipath + f".{n}"
                    total += _copy_out(fs, p, part)
                    with open(part, "rb") as f:
                        out.write(f.read())
                    os.unlink(part)
            log(f"disk: initrd {' + '.join(initrds)} ({total} bytes)")
        if not options:
            options = _distro_args(fs, kernel)
    except diskfs.DiskfsError as exc:
        raise InitError(f"{where}: {exc}") from None
    # BLS options (or the distro's GRUB arguments) first, so the operator's cloudboot.cmdline (later tokens)
    # wins (REFERENCE.md §4.2).
    cmdline = " ".join(s for s in (options, cmd.get("cloudboot.cmdline", "")) if s)
    return Target(kpath, ipath, cmdline, f"{kernel} on {where}")
