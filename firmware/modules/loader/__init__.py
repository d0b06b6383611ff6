"""The firmware's boot cascade (firmware-only): UKI stub -> \\EFI\\Linux\\<target>.efi on FAT -> BLS Type #1
entries on FAT volumes (menu when there are several) -> disks; the network (Path D, netboot.boot) first or
last or not at all, as netboot.boot.arrange decides.

The ESP target's names: `CloudBootTarget` alone when it is set, else `cloud-boot-<arch>` (this firmware's
arch: x86_64, aarch64, riscv64, loongarch64), then `cloud-boot`; so one ESP can carry a UKI per arch (the
cloud medium `cloud-boot build` makes) and each arch's firmware finds its own.

Each step prints what it found and why it wins or is skipped; the first bootable candidate is started.
"""

import uefi
from bootplan import bls
from bootplan import cmdline as grammar
from loader import kernel, menu, uki
from uefi import core, fs, handoff, mem

DEFAULT_TARGET = "cloud-boot"


def target_name():
    """CloudBootTarget (at most 64 of [A-Za-z0-9._-]) or the default; anything else is reported and ignored."""
    return _target_variable() or DEFAULT_TARGET


def _target_variable():
    raw = uefi.get_variable("CloudBootTarget")
    name = "".join(chr(b) for b in raw[:65]).strip("\r\n \t\0") if raw else ""
    for i, c in enumerate(name):
        if i >= 64 or not ("a" <= c.lower() <= "z" or "0" <= c <= "9" or c in "._-"):
            print("cloud-boot: CloudBootTarget ignored: %r at offset %d (want at most 64 of A-Z a-z 0-9 . _ -)"
                  % (c, i))
            return ""
    return name


def target_names():
    """The \\EFI\\Linux\\<name>.efi names to try, in order: CloudBootTarget alone when it is set, else
    cloud-boot-<arch> then cloud-boot."""
    name = _target_variable()
    return [name] if name else ["%s-%s" % (DEFAULT_TARGET, uefi.ARCH), DEFAULT_TARGET]


def _cmdline_for(volume):
    """CloudBootCmdline wins over a \\cmdline file on the volume's root."""
    text = uefi.cmdline_variable()
    if text:
        return text, "CloudBootCmdline variable"
    if volume is not None and volume.exists("\\cmdline"):
        return volume.read("\\cmdline").decode().strip("\r\n \t\0"), "\\cmdline file"
    return "", "no command line"


def boot_uki():
    """Step (a): this image carries .linux (+ .initrd, .cmdline): boot them."""
    sections = uki.own_sections()
    if ".linux" not in sections:
        return False
    cmdline = uefi.cmdline_variable()
    why = "CloudBootCmdline variable"
    if not cmdline and ".cmdline" in sections:
        addr, size = sections[".cmdline"]
        cmdline, why = uki.text_at(addr, size), ".cmdline section"
    # Short lines: firmware terminals wrap at their column count (80 or 100).
    print("cloud-boot: UKI stub mode: .linux %d bytes, .initrd %d bytes" % (
        sections[".linux"][1], sections.get(".initrd", (0, 0))[1]))
    print("cloud-boot: command line from %s: %s" % (why, cmdline))
    # .linux may be a zstd/gzip-compressed Image (the cloud medium's arm64/riscv64 kernels, to fit its size
    # budget): unpacked into pages of its own; the section itself belongs to this image and is never freed.
    linux = kernel.unpack(*sections[".linux"], owned=False)
    try:
        handoff.start_image(linux[0], linux[1], cmdline, sections.get(".initrd"), uefi.loaded_image().device_handle)
    finally:
        if linux != sections[".linux"]:
            _free(linux)
    return True


def esp_target(paths):
    """(volume, path) of the first of `paths` on any FAT volume, or None."""
    volumes = fs.volumes()
    for path in paths:
        for vol in volumes:
            if vol.exists(path):
                return vol, path
    return None


def _target_paths():
    return ["\\EFI\\Linux\\%s.efi" % name for name in target_names()]


def uki_on_medium():
    """What the cascade would boot before the network as a cloud-boot UKI for this arch (this image itself,
    or \\EFI\\Linux\\<target>.efi), described; None when there is none (netboot's placement asks)."""
    if ".linux" in uki.own_sections():
        return "this image's own .linux (UKI stub mode)"
    found = esp_target(_target_paths())
    return None if found is None else found[1]


def boot_esp_target():
    """Step (b): \\EFI\\Linux\\<target>.efi on any FAT volume (names from target_names, in order)."""
    paths = _target_paths()
    found = esp_target(paths)
    if found is None:
        print("cloud-boot: no %s on any FAT volume" % " or ".join(paths))
        return False
    vol, path = found
    cmdline, why = _cmdline_for(vol)
    addr, size = vol.read_into_pages(path)
    print("cloud-boot: booting %s (%d bytes) from volume %x" % (path, size, vol.handle))
    print("cloud-boot: command line from %s: %s" % (why, cmdline))
    handoff.start_image(addr, size, cmdline, _initrd_args(vol, cmdline), vol.handle)
    return True


def _initrd_args(vol, cmdline):
    """The `initrd=` files of the command line, read from the volume and joined, for the LoadFile2 hand-off:
    kernels from 7.x on (riscv64 first) dropped the EFI stub's own `initrd=` file loader."""
    paths = [w[7:] for w in grammar.split(cmdline) if w.startswith("initrd=") and len(w) > 7]
    found = [p for p in paths if vol.exists(p)]
    for p in paths:
        if p not in found:
            print("cloud-boot: initrd=%s: not on this volume (left to the kernel)" % p)
    if not found:
        return None
    print("cloud-boot: initrd from initrd= via LoadFile2: %s" % " + ".join(found))
    return _concat([vol.read_into_pages(p) for p in found])


def options(report=False):
    """The cloudboot.* options of this boot: LoadOptions, then CloudBootCmdline (its keys win), in the grammar
    the init reads (bootplan.cmdline). Malformed values count as absent; `report` prints them and unknown
    keys (once, from run())."""
    opts, bad, unknown = grammar.check(grammar.merge(uefi.load_options(), uefi.cmdline_variable()))
    if report:
        for msg in bad:
            print("cloud-boot: %s (ignored)" % msg)
        for msg in unknown:
            print("cloud-boot: %s" % msg)
    return opts


def _menu(labels):
    """Index of the candidate to boot. REFERENCE §1: cloudboot.menu=0|1 forces the menu off or on (else it is
    shown when there is a choice), cloudboot.menu.timeout=<duration> (default 5 s; 0 waits for a key)."""
    opts = options()
    mode = opts.get("cloudboot.menu")
    if mode == "0" or (mode != "1" and len(labels) < 2):
        return 0
    return menu.choose(labels, 0, grammar.duration(opts.get("cloudboot.menu.timeout", "5")))


def bls_entries():
    """BLS entries of every FAT volume, in boot-menu order (each gets a `.volume`)."""
    found = []
    for vol in fs.volumes():
        if not vol.exists("\\loader\\entries"):
            continue
        for name in vol.listdir("\\loader\\entries"):
            if not name.endswith(".conf"):
                continue
            try:
                entry = bls.parse(name, vol.read("\\loader\\entries\\" + name).decode())
            except (bls.BlsError, UnicodeError) as exc:
                print("cloud-boot: skipping BLS entry %s: %s" % (name, exc))
                continue
            entry.volume = vol
            found.append(entry)
    return bls.order(found)


def _concat(parts):
    """Page allocations [(address, size)] joined into one (initrds are concatenated), the parts freed."""
    total = sum(size for _, size in parts)
    addr = core.allocate_pages(max(1, (total + 4095) // 4096))
    pos = 0
    for part_addr, size in parts:
        mem.view(addr + pos, size)[:] = mem.view(part_addr, size)
        core.free_pages(part_addr, max(1, (size + 4095) // 4096))
        pos += size
    return addr, total


def boot_bls():
    """Step (c): BLS Type #1 entries on FAT volumes (ESP/XBOOTLDR), newest version first."""
    entries = bls_entries()
    if not entries:
        return False
    if len(entries) > 1:
        print("cloud-boot: %d BLS entries; the newest version is the default" % len(entries))
    chosen = entries[_menu([e.label() + " (" + (e.version or e.name) + ")" for e in entries])]
    if not chosen.linux:
        print("cloud-boot: entry %s has no 'linux' line (efi entries are not supported yet)" % chosen.name)
        return False
    vol = chosen.volume
    cmdline = uefi.cmdline_variable() or chosen.cmdline
    print("cloud-boot: booting BLS entry %s: %s" % (chosen.name, chosen.linux))
    print("cloud-boot: command line: %s" % cmdline)
    linux = kernel.unpack(*vol.read_into_pages(chosen.linux))
    initrd = _concat([vol.read_into_pages(p) for p in chosen.initrd]) if chosen.initrd else None
    handoff.start_image(linux[0], linux[1], cmdline, initrd, vol.handle)
    return True


def _load_file(fsys, path):
    """A file of a diskfs filesystem read into fresh pages: (address, size); holes (sparse kernels, as mkfs -d
    writes them) are zeroed by the reader (pages from AllocatePages are not)."""
    node = fsys.lookup(path)
    addr = core.allocate_pages(max(1, (node.size + 4095) // 4096))
    try:
        fsys.readinto_file(node, 0, mem.view(addr, node.size))
    except Exception:
        _free((addr, node.size))
        raise
    return addr, node.size


def _free(region):
    """Give back the pages of an (address, size) region from _load_file / _concat (None: nothing)."""
    if region is not None:
        core.free_pages(region[0], max(1, (region[1] + 4095) // 4096))


def disk_candidates():
    """(candidate, filesystem, label) for every kernel on every partition of every disk, best first per fs."""
    import diskfs
    from bootplan import discover
    from uefi.blockio import BlockIoDevice, block_devices

    out = []
    for bio in block_devices(partitions=False):
        disk = BlockIoDevice(bio)
        try:
            parts = diskfs.partitions(disk)
        except (diskfs.DiskfsError, OSError) as exc:  # OSError: EfiError from ReadBlocks on a failing disk
            print("cloud-boot: %s: skipped: %s" % (disk.name, exc))
            continue
        for part in parts:
            try:
                fsys = diskfs.open_filesystem(part.device(disk))
            except (diskfs.DiskfsError, OSError) as exc:
                print("cloud-boot: %s partition %d: %s" % (disk.name, part.number, exc))
                continue
            if fsys is None:
                continue
            label = "%s partition %d (%s %r)" % (disk.name, part.number, fsys.TYPE, fsys.label)
            try:
                found = discover.find(fsys, log=lambda m, label=label: print("cloud-boot: %s: %s" % (label, m)))
            except (diskfs.DiskfsError, OSError) as exc:
                print("cloud-boot: %s: %s" % (label, exc))
                continue
            for cand in found:
                out.append((cand, fsys, label))
    return out


def _link_target(fsys, path):
    """The target when `path` is a symlink (openSUSE's /boot/vmlinuz-<v> -> ../usr/lib/modules/<v>/vmlinuz)."""
    try:
        return fsys.readlink(path)
    except Exception:  # noqa: BLE001 - not a symlink (or unreadable): nothing to add
        return None


def _disk_cmdline(cand, fsys):
    """(command line, where it came from) for a disk kernel: CloudBootCmdline, else the BLS entry's options,
    else what the distro's GRUB would pass (bootplan.distroargs)."""
    from bootplan import distroargs

    text = uefi.cmdline_variable()
    if text:
        return text, "CloudBootCmdline variable"
    if cand.options:
        return cand.options, cand.source
    return distroargs.find(fsys, cand.linux, "root=UUID=%s" % fsys.uuid_str)


def boot_disks():
    """Step (d): kernels on ext4/XFS/btrfs filesystems of any disk (BLS entries, then distro names), newest
    first; a candidate that fails (truncated kernel, unreadable file) says why and the next one is tried."""
    import diskfs

    found = disk_candidates()
    if not found:
        print("cloud-boot: no kernel on any disk")
        return False
    for cand, fsys, where in found:
        print("cloud-boot: found %s (%s) on %s" % (cand.linux, cand.source, where))
        for path in [cand.linux] + cand.initrd:
            target = _link_target(fsys, path)
            if target is not None:  # its own (short) line: firmware terminals wrap at 80 or 100 columns
                print("cloud-boot:   %s -> %s" % (path.rsplit("/", 1)[-1], target))
    pick = _menu(["%s (%s)" % (c.version, c.linux) for c, _, _ in found])
    found = found[pick:pick + 1] + found[:pick] + found[pick + 1:]  # then the others, in order
    for n, (cand, fsys, where) in enumerate(found):
        if n == 0:
            why = "chosen in the menu" if pick else "the newest version on the first disk that has one"
            print("cloud-boot: choosing %s: %s, %s" % (cand.version, cand.source, why))
        else:
            print("cloud-boot: trying the next candidate: %s %s on %s" % (cand.version, cand.linux, where))
        cmdline, why = _disk_cmdline(cand, fsys)
        print("cloud-boot: kernel arguments from %s" % why)  # own line: terminals wrap at 80 or 100
        print("cloud-boot: command line: %s" % cmdline)
        linux = initrd = None
        try:
            linux = kernel.unpack(*_load_file(fsys, cand.linux))
            initrd = _concat([_load_file(fsys, p) for p in cand.initrd]) if cand.initrd else None
            handoff.start_image(linux[0], linux[1], cmdline, initrd)
            return True
        except (OSError, diskfs.FsError) as exc:
            print("cloud-boot: %s failed: %s" % (cand.linux, exc))
        finally:  # reached only if the kernel failed to start or returned: its pages are ours again
            _free(linux)
            _free(initrd)
    return False


def run():
    """Try each step in order; returns (to the REPL) only if nothing could be booted."""
    options(report=True)
    from netboot import boot as netboot  # Path D: placed (or left out) by the command line, says why

    for step in netboot.arrange([boot_uki, boot_esp_target, boot_bls, boot_disks], uki_on_medium):
        try:
            if step():
                print("cloud-boot: %s: the image returned" % step.__name__)
        except Exception as exc:  # noqa: BLE001 - a bad disk or file must not stop the cascade
            print("cloud-boot: %s failed: %s: %s" % (step.__name__, type(exc).__name__, exc))
    print("cloud-boot: nothing bootable found; entering the REPL")
