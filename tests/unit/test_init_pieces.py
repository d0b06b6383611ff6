"""cloudboot.init pieces that run on any host: modules.dep ordering and loading, kernel checks and EFI zboot,
disk mode over mkfs-made images (through the portable core), the rescue loop and the boot flow's failures."""

from __future__ import annotations

import errno
import gzip
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

import arches
from cloudboot.init import disk, efivars, kexec, kexec_riscv64, linux, main, modules, planmode, rescue
from cloudboot.init.errors import InitError
from cloudboot.init.target import Target

DEP = """\
kernel/drivers/block/virtio_blk.ko:
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko
kernel/fs/fat/vfat.ko: kernel/fs/fat/fat.ko
kernel/fs/fat/fat.ko:
kernel/net/core/failover.ko:
"""


def test_module_names() -> None:
    assert modules.module_name("kernel/fs/nls/nls_iso8859-1.ko.xz") == "nls_iso8859_1"
    assert modules.module_name("virtio_blk.ko") == "virtio_blk"
    assert modules.module_name("x/y.ko.zst") == "y"


def test_load_order_puts_dependencies_first() -> None:
    deps = modules.parse_dep(DEP)
    order = modules.load_order(deps)
    assert sorted(order) == sorted(deps) and len(order) == len(set(order))
    for path, needs in deps.items():
        for n in needs:
            assert order.index(n) < order.index(path), (n, path)
    assert modules.load_order(deps, ["kernel/drivers/net/virtio_net.ko"]) == [
        "kernel/net/core/failover.ko", "kernel/drivers/net/net_failover.ko", "kernel/drivers/net/virtio_net.ko"]


def test_bad_modules_dep() -> None:
    with pytest.raises(InitError, match="cycle: a.ko -> b.ko -> a.ko"):
        modules.load_order(modules.parse_dep("a.ko: b.ko\nb.ko: a.ko\n"))
    with pytest.raises(InitError, match="a.ko needs b.ko"):
        modules.load_order(modules.parse_dep("a.ko: b.ko\n"))
    with pytest.raises(InitError, match="line 2"):
        modules.parse_dep("a.ko:\nno colon here\n")


def test_load_all_calls_finit_in_order(tmp_path: Path) -> None:
    (tmp_path / "modules.dep").write_text(DEP)
    for path in modules.parse_dep(DEP):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(path.encode())
    calls = []

    def finit(fd: int) -> None:
        data = os.read(fd, 200).decode()
        calls.append(data)
        if data.endswith("fat.ko") and "vfat" not in data:
            raise OSError(errno.EEXIST, "exists")  # already loaded: fine, not reported as loaded now
        if data.endswith("virtio_blk.ko"):
            raise OSError(errno.ENODEV, "No such device")  # logged, the rest still load

    loaded = modules.load_all(str(tmp_path), finit)
    assert calls == modules.load_order(modules.parse_dep(DEP))
    assert loaded == ["failover", "net_failover", "virtio_net", "vfat"]
    assert modules.load_all(str(tmp_path / "none"), finit) == []


def test_syscall_numbers() -> None:
    assert linux.syscall_number("kexec_file_load", "x86_64") == 320
    assert linux.syscall_number("kexec_file_load", "aarch64") == 294
    assert linux.syscall_number("finit_module", "riscv64") == 273
    assert linux.syscall_number("reboot", "loongarch64") == 142
    with pytest.raises(OSError, match="no syscall table for machine 'sparc64'"):
        linux.syscall_number("reboot", "sparc64")


def test_syscall_reaches_the_kernel() -> None:
    # finit_module on a non-module fd fails inside the kernel (EPERM without CAP_SYS_MODULE, else ENOEXEC /
    # EINVAL / EBADF): proof that the number and the arguments reach the right syscall. A host kernel built
    # without module support (no /proc/modules) answers ENOSYS, and that is all it can show.
    if os.uname().machine not in arches.NAMES:
        pytest.skip("unknown machine")
    fd = os.open("/proc/self/stat", os.O_RDONLY)
    try:
        with pytest.raises(OSError) as info:
            linux.finit_module(fd)
    finally:
        os.close(fd)
    if not os.path.exists("/proc/modules"):
        assert info.value.errno == errno.ENOSYS, info.value
    else:
        assert info.value.errno in (errno.EPERM, errno.ENOEXEC, errno.EINVAL, errno.EBADF, errno.EFBIG), info.value


def test_preload_maps_libcrypto_without_hashlib() -> None:
    """preload.start() maps libcrypto (and has OpenSSL fetch SHA-256) on its thread, before anything imports
    hashlib; the process goes on meanwhile."""
    from cloudboot.init import preload

    assert preload.LIBRARY == "libcrypto.so.3"  # what _hashlib links (Debian's OpenSSL 3)
    code = ("import sys, time; sys.path[:0] = [sys.argv[1]]; from cloudboot.init import preload; preload.start()\n"
            "for _ in range(200):\n"
            "    if preload.LIBRARY in open('/proc/self/maps').read(): break\n"
            "    time.sleep(0.05)\n"
            "print(preload.LIBRARY in open('/proc/self/maps').read(), '_hashlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code, str(Path(__file__).parents[2] / "host")],
                         capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"], out


def _python_with_preload(modules: Path, code: str) -> subprocess.CompletedProcess:
    """`code` run by a fresh interpreter with cloudboot.init.preload imported and `modules` first on its path."""
    code = "import sys; sys.path[:0] = sys.argv[1:]; from cloudboot.init import preload\n" + code
    where = [str(modules), str(Path(__file__).parents[2] / "host")]
    return subprocess.run([sys.executable, "-I", "-S", "-c", code, *where], capture_output=True, text=True, check=True)


def test_preload_defer_runs_a_module_at_first_use(tmp_path: Path) -> None:
    """preload.defer (how the init keeps 3.14's ctypes from running sysconfig) puts the module in sys.modules
    without running it, also through an import statement; its code runs at the first use of a name in it, once;
    a name it lacks is then an AttributeError; a missing module is left alone."""
    (tmp_path / "deferred_mod.py").write_text("import sys\nsys.ran = getattr(sys, 'ran', 0) + 1\nVALUE = 7\n")
    code = ("preload.defer('deferred_mod'); preload.defer('no_such_module_here')\n"
            "import deferred_mod\nbefore = getattr(sys, 'ran', 0)\n"
            "from deferred_mod import VALUE\n"
            "try:\n    deferred_mod.MISSING\nexcept AttributeError as exc:\n    missing = type(exc).__name__\n"
            "print(before, VALUE, deferred_mod.VALUE, sys.ran, missing, "
            "'no_such_module_here' in sys.modules)")
    out = _python_with_preload(tmp_path, code)
    assert out.stdout.split() == ["0", "7", "7", "1", "AttributeError", "False"], out


def test_preload_defer_threads_and_failures(tmp_path: Path) -> None:
    """Two threads reaching a deferred module at once: the second waits for its code to finish (no half-run
    module), and it runs once. A module whose code fails raises at first use and leaves sys.modules, as a failed
    import does, so the next import runs it again."""
    (tmp_path / "slow_mod.py").write_text("import sys, time\nsys.ran = getattr(sys, 'ran', 0) + 1\n"
                                          "time.sleep(0.3)\nVALUE = 7\n")
    (tmp_path / "bad_mod.py").write_text("import sys\nsys.bad = getattr(sys, 'bad', 0) + 1\nraise ValueError('bad')\n")
    code = ("import threading\npreload.defer('slow_mod'); preload.defer('bad_mod')\n"
            "import slow_mod\ngot = []\n"
            "def use():\n    try:\n        got.append(slow_mod.VALUE)\n    except AttributeError as exc:\n"
            "        got.append(repr(exc))\n"
            "ts = [threading.Thread(target=use) for _ in range(2)]\n[t.start() for t in ts]\n[t.join() for t in ts]\n"
            "import bad_mod\nerrors = []\n"
            "for _ in range(2):\n    try:\n        import bad_mod; bad_mod.X\n    except ValueError as exc:\n"
            "        errors.append(str(exc))\n"
            "print(got, sys.ran, errors, sys.bad, 'bad_mod' in sys.modules)")
    out = _python_with_preload(tmp_path, code)
    assert out.stdout.strip() == "[7, 7] 1 ['bad', 'bad'] 2 False", out


def test_check_kernel() -> None:
    bz = bytearray(1024)
    bz[0x202:0x206] = b"HdrS"
    kexec.check_kernel(bytes(bz), "x86_64")
    kexec.check_kernel(b"MZ" + bytes(100), "aarch64")
    with pytest.raises(InitError, match="not an x86 bzImage.*cpio archive"):
        kexec.check_kernel(b"070701" + bytes(1000), "x86_64")
    with pytest.raises(InitError, match="no MZ header.*gzip stream"):
        kexec.check_kernel(b"\x1f\x8b" + bytes(100), "riscv64")
    with pytest.raises(InitError, match="empty file"):
        kexec.check_kernel(b"", "aarch64")


def _zboot(payload: bytes, kind: bytes) -> bytes:
    head = bytearray(64)
    head[:2], head[4:8] = b"MZ", b"zimg"
    struct.pack_into("<II", head, 8, 64, len(payload))
    head[24:24 + len(kind)] = kind
    return bytes(head) + payload


def test_zboot_unwrap(tmp_path: Path) -> None:
    kernel = b"MZ" + bytes(range(256)) * 100
    src = tmp_path / "vmlinuz"
    src.write_bytes(_zboot(gzip.compress(kernel), b"gzip"))
    out = tmp_path / "out"
    assert kexec.unwrap_zboot(str(src), str(out)) == str(out)
    assert out.read_bytes() == kernel
    plain = tmp_path / "plain"
    plain.write_bytes(kernel)
    assert kexec.unwrap_zboot(str(plain), str(out)) == str(plain)  # not zboot: used as it is
    src.write_bytes(_zboot(b"xxxx", b"lz4"))
    with pytest.raises(InitError, match="unsupported compression 'lz4' \\(need gzip or zstd\\)"):
        kexec.unwrap_zboot(str(src), str(out))
    src.write_bytes(_zboot(b"not gzip at all", b"gzip"))
    with pytest.raises(InitError, match="gzip payload is corrupt"):
        kexec.unwrap_zboot(str(src), str(out))
    src.write_bytes(_zboot(gzip.compress(kernel), b"gzip")[:200])
    with pytest.raises(InitError, match="truncated"):
        kexec.unwrap_zboot(str(src), str(out))


def test_zboot_zstd_through_each_decoder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """zstd payloads: libzstd through ctypes (trixie's 3.13 init, and this host's Python), the portable decoder
    when libzstd cannot be loaded, and CPython 3.14's compression.zstd (sid's init) when importable, with the same
    errors each way."""
    import types

    from cloudboot.init import libzstd

    kernel = b"MZ" + bytes(range(256)) * 100
    frame = subprocess.run(["zstd", "-q", "-c"], input=kernel, capture_output=True, check=True).stdout
    src, out = tmp_path / "vmlinuz", tmp_path / "out"
    src.write_bytes(_zboot(frame, b"zstd"))
    assert libzstd.library() is not None
    kexec.unwrap_zboot(str(src), str(out))
    assert out.read_bytes() == kernel
    monkeypatch.setattr(libzstd, "library", lambda: None)
    out.unlink()
    kexec.unwrap_zboot(str(src), str(out))  # compat.zstd
    assert out.read_bytes() == kernel
    monkeypatch.undo()
    calls = []

    class ZstdError(Exception):
        pass

    def decompress(data: bytes) -> bytes:
        calls.append(len(data))
        if data != frame:
            raise ZstdError("Unknown frame descriptor")
        return kernel

    fake = types.ModuleType("compression.zstd")
    fake.decompress, fake.ZstdError = decompress, ZstdError
    package = types.ModuleType("compression")
    package.zstd = fake
    monkeypatch.setitem(sys.modules, "compression", package)
    monkeypatch.setitem(sys.modules, "compression.zstd", fake)
    out.unlink()
    kexec.unwrap_zboot(str(src), str(out))
    assert out.read_bytes() == kernel and calls == [len(frame)]
    src.write_bytes(_zboot(b"\x28\xb5\x2f\xfd garbage", b"zstd"))
    with pytest.raises(InitError, match="zstd payload is corrupt: Unknown frame descriptor"):
        kexec.unwrap_zboot(str(src), str(out))


def test_libzstd_frames(tmp_path: Path) -> None:
    """init.libzstd against zstd(1): frames with and without their content size (the kernel's zboot payloads come
    from a pipe), output that outgrows its first buffer, and each way a payload can be wrong."""
    from cloudboot.init import libzstd

    data = os.urandom(300_000) + bytes(5 << 20) + b"end"
    (tmp_path / "k").write_bytes(data)
    sized = subprocess.run(["zstd", "-q", "-c", str(tmp_path / "k")], capture_output=True, check=True).stdout
    piped = subprocess.run(["zstd", "-q", "-c"], input=data, capture_output=True, check=True).stdout
    assert len(piped) * 4 < len(data)  # the first buffer (4x the input) must grow
    for frame in (sized, piped):
        assert libzstd.decompress(frame, 1 << 30) == data
    assert libzstd.decompress(subprocess.run(["zstd", "-q", "-c"], input=b"", capture_output=True,
                                             check=True).stdout, 1 << 20) == b""
    with pytest.raises(libzstd.ZstdError, match=f"the frame says it holds {len(data)} bytes, more than 1000000"):
        libzstd.decompress(sized, 1_000_000)
    with pytest.raises(libzstd.ZstdError, match="unpacks to more than 1000000 bytes"):
        libzstd.decompress(piped, 1_000_000)
    with pytest.raises(libzstd.ZstdError, match="truncated"):
        libzstd.decompress(piped[:-40], 1 << 30)
    with pytest.raises(libzstd.ZstdError, match="7 bytes follow the frame"):
        libzstd.decompress(piped + b"garbage", 1 << 30)
    with pytest.raises(libzstd.ZstdError, match="Unknown frame descriptor"):
        libzstd.decompress(b"not a zstd frame", 1 << 30)
    with pytest.raises(libzstd.ZstdError, match="Data corruption detected"):
        libzstd.decompress(b"\x28\xb5\x2f\xfd garbage", 1 << 30)


def _ext4(tmp: Path, name: str, label: str, files: dict[str, bytes], partitioned: bool) -> Path:
    tree = tmp / f"{name}-tree"
    for rel, data in files.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_bytes(data)
    fsimg = tmp / f"{name}.fs"
    with open(fsimg, "wb") as f:
        f.truncate(16 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", label, "-U", "11111111-2222-3333-4444-555555555555", "-d",
                    str(tree), str(fsimg)], check=True, capture_output=True)
    if not partitioned:
        return fsimg
    img = tmp / f"{name}.img"
    with open(img, "wb") as f:
        f.truncate(18 << 20)
    subprocess.run(["sfdisk", "-q", str(img)], input=b"label: gpt\nstart=2048, size=32768, name=cbroot\n",
                   check=True, capture_output=True)
    with open(img, "r+b") as f, open(fsimg, "rb") as src:
        f.seek(2048 * 512)
        f.write(src.read())
    return img


FS_UUID = "11111111-2222-3333-4444-555555555555"
KERNEL = b"MZ" + bytes(range(256)) * 40
FILES = {
    "boot/vmlinuz-6.1.0-9-amd64": b"MZ old",
    "boot/initrd.img-6.1.0-9-amd64": b"old initrd",
    "boot/vmlinuz-6.12.10-amd64": KERNEL,
    "boot/initrd.img-6.12.10-amd64": b"070701 new initrd",
    "boot/vmlinuz-0-rescue-abc": b"MZ rescue",
    "boot/initramfs-0-rescue-abc.img": b"rescue initrd",
}


def test_riscv64_image_wrapped_as_elf(tmp_path: Path) -> None:
    """riscv64's kexec_file_load (Linux 6.12) reads ELF only: the Image goes in one PT_LOAD at 0, entry 0, sized by
    the header's image_size (BSS included) and 2 MiB aligned; readelf's view of it, checked with pyelftools."""
    from elftools.elf.elffile import ELFFile

    image = bytearray(b"MZ" + bytes(62) + bytes(range(256)) * 40)
    struct.pack_into("<Q", image, 16, 3 << 20)  # image_size: 3 MiB in memory
    image[48:60] = kexec_riscv64.RISCV_MAGIC + kexec_riscv64.RISCV_MAGIC2
    src = tmp_path / "Image"
    src.write_bytes(image)
    out = kexec.riscv64_elf(str(src), str(tmp_path / "k.elf"))
    with open(out, "rb") as f:
        elf = ELFFile(f)
        assert (elf["e_machine"], elf["e_type"], elf["e_entry"], elf.elfclass) == ("EM_RISCV", "ET_EXEC", 0, 64)
        (seg,) = list(elf.iter_segments())
        assert (seg["p_type"], seg["p_vaddr"], seg["p_paddr"], seg["p_align"]) == ("PT_LOAD", 0, 0, 0x200000)
        assert (seg["p_filesz"], seg["p_memsz"]) == (len(image), 3 << 20)
        assert seg.data() == bytes(image)
    assert os.path.getsize(out) == seg["p_offset"] + (3 << 20)  # what follows goes after the file's length
    src.write_bytes(b"MZ" + bytes(100))
    with pytest.raises(InitError, match="not a RISC-V Image"):
        kexec.riscv64_elf(str(src), str(tmp_path / "bad.elf"))


def test_disk_mode_distro_names(tmp_path: Path) -> None:
    other = _ext4(tmp_path, "other", "DATA", {"etc/x": b"1"}, partitioned=False)
    img = _ext4(tmp_path, "boot", "CBBOOT", FILES, partitioned=True)
    work = tmp_path / "run"
    t = disk.prepare({"cloudboot.disk": "LABEL=CBBOOT", "cloudboot.cmdline": "console=ttyS0 x=1"}, str(work),
                     disks_fn=lambda: [str(other), str(img)])
    assert Path(t.kernel).read_bytes() == KERNEL  # the newest version, never the rescue image
    assert Path(t.initrd).read_bytes() == b"070701 new initrd"
    assert t.cmdline == f"root=UUID={FS_UUID} ro console=ttyS0 x=1"  # no GRUB files: root=UUID= ro, as GRUB
    assert "/boot/vmlinuz-6.12.10-amd64" in t.description and "partition 1" in t.description
    t = disk.prepare({"cloudboot.disk": "PARTLABEL=cbroot", "cloudboot.disk.kernel": "/boot/vmlinuz-6.1.0-9-amd64",
                      "cloudboot.disk.fs": "ext4"}, str(work), disks_fn=lambda: [str(img)])
    assert Path(t.kernel).read_bytes() == b"MZ old" and t.cmdline == f"root=UUID={FS_UUID} ro"
    assert Path(t.initrd).read_bytes() == b"old initrd"  # a pinned kernel gets its version's initrd
    t = disk.prepare({"cloudboot.disk": str(other), "cloudboot.disk.kernel": "/etc/x"}, str(work),
                     disks_fn=lambda: [])
    assert Path(t.kernel).read_bytes() == b"1"


def test_disk_mode_bls_entry_first(tmp_path: Path) -> None:
    files = dict(FILES)
    files["boot/loader/entries/fedora.conf"] = (b"title Fedora\nversion 6.1.0-9-amd64\nlinux /vmlinuz-6.1.0-9-amd64\n"
                                               b"initrd /initrd.img-6.1.0-9-amd64\noptions root=LABEL=f ro quiet\n")
    img = _ext4(tmp_path, "bls", "BLS", files, partitioned=False)
    t = disk.prepare({"cloudboot.disk": "UUID=11111111-2222-3333-4444-555555555555",
                      "cloudboot.cmdline": "quiet=0"}, str(tmp_path / "run"), disks_fn=lambda: [str(img)])
    assert Path(t.kernel).read_bytes() == b"MZ old"
    assert t.cmdline == "root=LABEL=f ro quiet quiet=0"  # BLS options first: the operator's tokens win


def test_disk_mode_failures_say_what_was_seen(tmp_path: Path) -> None:
    img = _ext4(tmp_path, "boot", "CBBOOT", FILES, partitioned=True)
    empty = _ext4(tmp_path, "empty", "EMPTY", {"etc/hostname": b"x"}, partitioned=False)
    with pytest.raises(InitError) as info:
        disk.prepare({"cloudboot.disk": "LABEL=NOPE", "cloudboot.disk.wait": "0.2"}, str(tmp_path / "run"),
                     disks_fn=lambda: [str(img), str(empty)])
    msg = str(info.value)
    assert "no device matches cloudboot.disk=LABEL=NOPE after 0.2s" in msg
    assert "label='CBBOOT'" in msg and "label='EMPTY'" in msg and "partlabel='cbroot'" in msg
    with pytest.raises(InitError, match="no kernel found"):
        disk.prepare({"cloudboot.disk": "LABEL=EMPTY"}, str(tmp_path / "run"), disks_fn=lambda: [str(empty)])
    with pytest.raises(InitError, match="cloudboot.disk.fs=xfs but .* holds ext4"):
        disk.prepare({"cloudboot.disk": "LABEL=EMPTY", "cloudboot.disk.fs": "xfs"}, str(tmp_path / "run"),
                     disks_fn=lambda: [str(empty)])
    with pytest.raises(InitError, match="/boot/missing"):
        disk.prepare({"cloudboot.disk": "LABEL=EMPTY", "cloudboot.disk.kernel": "/boot/missing"},
                     str(tmp_path / "run"), disks_fn=lambda: [str(empty)])
    with pytest.raises(InitError, match="no device matches cloudboot.disk=/dev/nonexistent"):
        disk.prepare({"cloudboot.disk": "/dev/nonexistent", "cloudboot.disk.wait": "0"}, str(tmp_path / "run"),
                     disks_fn=lambda: [])


def test_disk_mode_luks(testdata: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A LUKS2 device (cryptsetup-made, tests/portable/images.py) opened with cloudboot.disk.luks-passphrase;
    the filesystem type check applies to what is inside; the passphrase is never printed."""
    image = str(Path(testdata) / "luks2-argon2id.img")
    secret = "correct horse \u2713"
    t = disk.prepare({"cloudboot.disk": "LABEL=luks2-argon2id", "cloudboot.disk.luks-passphrase": secret,
                      "cloudboot.disk.fs": "ext4", "cloudboot.disk.kernel": "/boot/vmlinuz-6.12.117-amd64"},
                     str(tmp_path / "run"), disks_fn=lambda: [image])
    assert Path(t.kernel).read_bytes()[:2] == b"MZ" and "(luks2)" in t.description
    found = disk.prepare({"cloudboot.disk": image, "cloudboot.disk.luks-passphrase": secret}, str(tmp_path / "run"))
    assert found.kernel and "vmlinuz-6.12.117-amd64" in found.description  # discovery inside the container
    for cmd, message in (
            ({}, "is LUKS-encrypted: set cloudboot.disk.luks-passphrase= .preferably in the metadata"),
            ({"cloudboot.disk.luks-passphrase": "nope"}, "LUKS2: wrong passphrase: no keyslot opens with it"),
            ({"cloudboot.disk.luks-passphrase": secret, "cloudboot.disk.fs": "xfs"},
             "cloudboot.disk.fs=xfs but .* holds ext4"),
            ({"cloudboot.disk.luks-passphrase": secret, "cloudboot.disk.luks-limits": "max_memory_kib=1024"},
             "over the limit of 1024 .raise the LUKS limit max_memory_kib"),
            ({"cloudboot.disk.luks-passphrase": secret, "cloudboot.disk.luks-limits": "max_mem=1"},
             "cloudboot.disk.luks-limits: LUKS limit 'max_mem=1'")):
        with pytest.raises(InitError, match=message):
            disk.prepare({"cloudboot.disk": image, **cmd}, str(tmp_path / "run"))
    out = capsys.readouterr()
    assert "horse" not in out.out + out.err


def test_disk_mode_zfs(testdata: str, tmp_path: Path) -> None:
    """cloudboot.disk=<pool>/<dataset> on zfs-fuse pools (tests/portable/images.py): the devices found by label,
    /boot read through its own child dataset, a mirror with a leg missing; names the pools it saw otherwise."""
    t = Path(testdata)
    work = str(tmp_path / "run")
    found = disk.prepare({"cloudboot.disk": "cbzfssingle/ROOT/debian", "cloudboot.cmdline": "x=1"}, work,
                         disks_fn=lambda: [str(t / "vfat.img"), str(t / "zfs-single.img")])
    assert "/boot/vmlinuz-6.12.117-amd64 on ZFS cbzfssingle/ROOT/debian" in found.description
    assert Path(found.kernel).read_bytes()[:2] == b"MZ" and found.cmdline == "root=ZFS=cbzfssingle/ROOT/debian ro x=1"
    t2 = disk.prepare({"cloudboot.disk": "/cbzfsmirror/data", "cloudboot.disk.fs": "zfs"}, work,
                      disks_fn=lambda: [str(t / "zfs-mirror.img")])  # one of two legs
    assert Path(t2.kernel).read_bytes() == Path(found.kernel).read_bytes()
    with pytest.raises(InitError, match="no device holds ZFS pool rpool after 0s; pools seen: .*cbzfsmirror"):
        disk.prepare({"cloudboot.disk": "rpool/ROOT", "cloudboot.disk.wait": "0"}, work,
                     disks_fn=lambda: [str(t / "zfs-mirror.img")])
    with pytest.raises(InitError, match="ZFS cbzfsmirror/nope: .*has no dataset cbzfsmirror/nope"):
        disk.prepare({"cloudboot.disk": "cbzfsmirror/nope"}, work, disks_fn=lambda: [str(t / "zfs-mirror.img")])


@pytest.mark.openzfs
def test_disk_mode_openzfs_encrypted(testdata: str, tmp_path: Path) -> None:
    """A pool OpenZFS put in partition 1, its dataset encrypted (keyformat=passphrase): opened with
    cloudboot.disk.zfs-passphrase, refused by name without it."""
    t = Path(testdata)
    work = str(tmp_path / "run")
    enc = disk.prepare({"cloudboot.disk": "cbopenzfs/enc-pass", "cloudboot.disk.zfs-passphrase": "openzfs passphrase"},
                       work, disks_fn=lambda: [str(t / "openzfs.img")])
    assert enc.description.startswith("/boot/vmlinuz-6.12.117-amd64 on ZFS cbopenzfs/enc-pass"), enc.description
    assert Path(enc.kernel).read_bytes() == (t / "tree/boot/vmlinuz-6.12.117-amd64").read_bytes()
    with pytest.raises(InitError, match="enc-pass is encrypted .keyformat passphrase.: a passphrase is needed"):
        disk.prepare({"cloudboot.disk": "cbopenzfs/enc-pass"}, work, disks_fn=lambda: [str(t / "openzfs.img")])


def test_rescue_prompt_never_returns_on_its_own(capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rescue.time, "sleep", lambda s: None)
    sessions = []

    stdin = open(os.devnull)
    monkeypatch.setattr(rescue.sys, "stdin", stdin)

    def interact(banner: str, env: dict) -> None:
        sessions.append(env["reason"])
        assert not rescue.sys.stdin.closed  # every prompt has a console to read
        if len(sessions) == 1:
            rescue.sys.stdin.close()  # what exit() at the prompt does, before SystemExit
            raise SystemExit(0)
        if len(sessions) == 2:
            return  # EOF
        raise StopIteration  # the test's way out

    rescue.fatal("disk not found", {"cmd": {}}, interact)
    out = capsys.readouterr().out
    assert sessions == ["disk not found"] * 3
    assert "FATAL: disk not found\n" in out
    assert out.count("new rescue prompt") == 2


def test_main_turns_every_failure_into_fatal(monkeypatch: pytest.MonkeyPatch) -> None:
    reasons = []
    monkeypatch.setattr(main, "fatal", lambda reason, ns: reasons.append(reason))

    def boom(cmd: dict) -> None:
        raise InitError("no device matches")

    monkeypatch.setattr(main, "run", boom)
    main.main()
    monkeypatch.setattr(main, "run", lambda cmd: 1 / 0)
    main.main()
    monkeypatch.setattr(main, "run", lambda cmd: None)
    main.main()
    assert reasons == ["no device matches", "ZeroDivisionError: division by zero",
                       "init finished without handing over to a kernel"]


def test_exit_sinks_and_targets() -> None:
    plain, rebooting = Target("k", None, "", "d"), Target("k", None, "", "d", exit="reboot")
    assert main.exit_sink({}, plain) == "kexec"
    assert main.exit_sink({}, rebooting) == "reboot"  # the plan's choice
    assert main.exit_sink({"cloudboot.exit": "kexec"}, rebooting) == "kexec"  # the command line wins
    assert main.exit_sink({"cloudboot.exit": "reboot"}, plain) == "reboot"
    with pytest.raises(InitError, match="cloudboot.exit='halt': want 'kexec' or 'reboot'"):
        main.exit_sink({"cloudboot.exit": "halt"}, plain)  # metadata values come after the command line checks
    with pytest.raises(InitError, match="nothing to boot: no plan reference on the kernel command line"):
        planmode.settle_source({}, None, "", {})


def test_cloudboot_cmdline_variable_from_efivarfs(tmp_path: Path) -> None:
    """The efivarfs file is 4 attribute bytes + the data; the firmware's rules for what is usable."""
    path = tmp_path / f"CloudBootCmdline-{efivars.CLOUDBOOT}"
    assert efivars.cmdline_variable(str(tmp_path)) == (None, "unset")
    path.write_bytes(b"\x07\x00\x00\x00cloudboot.plan=reg.example:5000/p:1 console=ttyS0\r\n\0")
    assert efivars.cmdline_variable(str(tmp_path)) == ("cloudboot.plan=reg.example:5000/p:1 console=ttyS0", "")
    path.write_bytes(b"\x07\x00\x00\x00console=ttyS0 \xff")
    assert efivars.cmdline_variable(str(tmp_path)) == (None, "byte 0xff at offset 14 is not printable ASCII")
    path.write_bytes(b"\x07\x00\x00\x00" + b"a" * 4096)
    assert efivars.cmdline_variable(str(tmp_path)) == (None, "longer than 4095 characters")


def test_encrypted_target_without_crypto_modules_names_the_build_flag(testdata: str, tmp_path: Path) -> None:
    """An init built without cryptography/argon2 (the cloud medium's default) that meets a LUKS device or an
    encrypted ZFS dataset stops with one line naming `cloud-boot build --luks`, before asking for a passphrase."""
    from diskfs import crypto

    t = Path(testdata)
    before = crypto._PROVIDER[:]
    crypto.set_provider(None)  # as in an initramfs without the crypto modules
    try:
        with pytest.raises(InitError) as err:
            disk.prepare({"cloudboot.disk": "LABEL=luks2-argon2id"}, str(tmp_path / "run"),
                         disks_fn=lambda: [str(t / "luks2-argon2id.img")])
        assert str(err.value) == (f"luks2 {t / 'luks2-argon2id.img'} is LUKS-encrypted, but this init has no crypto "
                                  "modules (cryptography, argon2): build the medium with `cloud-boot build --luks`")
    finally:
        crypto._PROVIDER[:] = before
    crypto.provider()  # restored: the other tests decrypt


def test_boot_path_imports_stay_light() -> None:
    """What the init imports on its way to a kexec (both modes, every loader, Path C, the registry client) leaves
    out dataclasses and what it pulls (inspect, ast, dis, tokenize): ~1.4 s of imports under riscv64 TCG (cosign
    and LUKS may still bring them through cryptography, off the default path); and json, re, enum, contextlib
    and queue: 0.2 s of the arm64 init's start under TCG (compat.json, log.phase, hash_cpython, kexec_segments)."""
    code = ("import sys\nimport cloudboot.init.main\n"
            "from cloudboot.init import disk, kexec, kexec_arm64, kexec_loongarch, kexec_riscv64, kexec_x86_64, "
            "lldp, net, planmode, reboot\n"
            "import cloudmeta, bootplan.plan, oci.hash_cpython, oci.srv, oci.transport_cpython\n"
            "print(' '.join(sorted({'dataclasses', 'inspect', 'ast', 'dis', 'tokenize', 'json', 're', 'enum', "
            "'contextlib', 'queue'} & set(sys.modules))))")
    from cloudboot.paths import MODULES_DIR, ROOT

    where = [str(ROOT / "host"), str(MODULES_DIR)]  # and the stdlib: no site (it imports re and more itself)
    out = subprocess.run([sys.executable, "-I", "-S", "-c", f"import sys; sys.path[:0] = {where!r}\n{code}"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""


def test_init_start_leaves_out_keymap_and_lldp() -> None:
    """The init's start (cloudboot.init.main, then its plan-mode modules) does not import the keyboard layouts or
    the LLDP listener: they are imported when cloudboot.keymap or LLDP asks for them (about 20 ms of arm64 start-up
    under TCG otherwise)."""
    code = ("import sys\nimport cloudboot.init.main\nfrom cloudboot.init import net, planmode\n"
            "print(' '.join(sorted({'cloudboot.init.keymap', 'cloudboot.init.lldp'} & set(sys.modules))))")
    from cloudboot.paths import MODULES_DIR, ROOT

    where = [str(ROOT / "host"), str(MODULES_DIR)]
    out = subprocess.run([sys.executable, "-I", "-S", "-c", f"import sys; sys.path[:0] = {where!r}\n{code}"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""
