"""The output discipline (image/output.py) through the verbs: nothing but a regular file is ever replaced (device
nodes, FIFOs, directories, symbolic links are refused with one line; a block device with how to write an image
onto it), keys are not replaced without --force, a failed write leaves nothing behind; inputs that are not
regular files (a FIFO would block forever) are refused."""

from __future__ import annotations

import os
import resource
import stat
from pathlib import Path

import pytest

from tests.unit.hostile import cli, ok, refused, tmpfs

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")


def _esp(out: Path, tmp_path: Path):
    src = tmp_path / "hello.txt"
    src.write_text("hello\n")
    return cli("esp", "--extra", f"{src}=hello.txt", "--esp-size", "16M", "-o", str(out))


@root_only
def test_a_device_node_at_the_output_is_refused_not_replaced(tmp_path: Path, signing: tuple[Path, Path, Path]
                                                            ) -> None:
    # A private copy of /dev/full's node (char 1:7) and a block device node nothing is attached to: the old
    # write_atomic renamed a regular file over both (and `iso -o /dev/sdX` would do it to a disk).
    full = tmp_path / "full"
    os.mknod(full, stat.S_IFCHR | 0o666, os.makedev(1, 7))
    line = refused(_esp(full, tmp_path), str(full), "character device", "not replacing")
    assert stat.S_ISCHR(os.lstat(full).st_mode), line
    disk = tmp_path / "sdz"
    os.mknod(disk, stat.S_IFBLK | 0o600, os.makedev(7, 250))
    line = refused(_esp(disk, tmp_path), str(disk), "block device", "dd if=")
    assert stat.S_ISBLK(os.lstat(disk).st_mode)
    # the issue's `iso -o /dev/sdX`: the hybrid image is refused there the same way
    iso = cli("iso", "--efi", f"linux/amd64={signing[0]}", "-o", str(disk))
    refused(iso, str(disk), "block device", "dd if=")
    assert stat.S_ISBLK(os.lstat(disk).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full", "hello.txt", "sdz"]  # no temporary left


def test_fifo_directory_and_symlink_outputs_are_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    refused(_esp(fifo, tmp_path), "FIFO")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    (tmp_path / "dir").mkdir()
    refused(_esp(tmp_path / "dir", tmp_path), "is a directory")
    target = tmp_path / "precious"
    target.write_bytes(b"keep me")
    (tmp_path / "link").symlink_to(target)
    refused(_esp(tmp_path / "link", tmp_path), "symbolic link")
    assert target.read_bytes() == b"keep me" and (tmp_path / "link").is_symlink()
    ok(_esp(tmp_path / "esp.img", tmp_path))
    ok(_esp(tmp_path / "esp.img", tmp_path))  # a built image is rebuilt in place


@pytest.fixture(scope="module")
def signing(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(hello.efi, db.key, db.crt)."""
    from cloudboot.fwbuild.hello import build_hello

    d = tmp_path_factory.mktemp("signing")
    ok(cli("genkey", "-d", str(d)))
    return build_hello("x86_64", d), d / "db.key", d / "db.crt"


@root_only
def test_sign_onto_a_character_device_is_refused(tmp_path: Path, signing: tuple[Path, Path, Path]) -> None:
    app, key, cert = signing
    full = tmp_path / "full"  # the issue's `sign -o /dev/full`, on a private node of the same device
    os.mknod(full, stat.S_IFCHR | 0o666, os.makedev(1, 7))
    refused(cli("sign", str(app), "--key", str(key), "--cert", str(cert), "-o", str(full)), "character device")
    assert stat.S_ISCHR(os.lstat(full).st_mode)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path, signing: tuple[Path, Path, Path]
                                                             ) -> None:
    app, key, cert = signing
    out = tmp_path / "out" / "signed.efi"
    out.parent.mkdir()
    out.write_bytes(b"old")
    # A file size limit makes the write fail as a full disk does (EFBIG instead of ENOSPC).
    refused(cli("sign", str(app), "--key", str(key), "--cert", str(cert), "-o", str(out),
                limits={resource.RLIMIT_FSIZE: 1024}), str(out), "cannot write")
    assert out.read_bytes() == b"old" and os.listdir(out.parent) == ["signed.efi"]


def test_genkey_never_replaces_a_key_without_force(tmp_path: Path) -> None:
    ok(cli("genkey", "-d", str(tmp_path), "--cn", "first"))
    key = (tmp_path / "db.key").read_bytes()
    line = refused(cli("genkey", "-d", str(tmp_path), "--cn", "second"), "db.key", "--force")
    assert (tmp_path / "db.key").read_bytes() == key, line
    ok(cli("genkey", "-d", str(tmp_path), "--cn", "third", "--force"))
    assert (tmp_path / "db.key").read_bytes() != key
    assert stat.S_IMODE(os.stat(tmp_path / "db.key").st_mode) == 0o600


def test_inputs_that_are_not_regular_files_are_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # nobody ever writes it: reading it would block forever
    refused(cli("inspect", str(fifo), timeout=60), "FIFO")
    refused(cli("plan", "check", str(fifo), timeout=60), "FIFO")
    refused(cli("fs", "ls", str(fifo), timeout=60), "FIFO")
    refused(cli("uki", "--stub", str(fifo), "--linux", str(fifo), "-o", str(tmp_path / "u.efi"), timeout=60), "FIFO")
    refused(cli("inspect", "/dev/zero", timeout=60), "character device")
    refused(cli("fs", "ls", "/dev/zero", timeout=60), "character device")


def test_inspect_of_a_4_gib_sparse_file_is_not_read_into_memory(tmp_path: Path,
                                                               signing: tuple[Path, Path, Path]) -> None:
    """`inspect` read its file whole (a MemoryError under a memory limit): it maps it now. Under a 512 MiB data
    limit, a 4 GiB sparse file of zeros is one line, and one holding an EFI app in front is described."""
    app = signing[0]
    zeros, fronted = tmp_path / "zeros.img", tmp_path / "fronted.img"
    for path, head in ((zeros, b""), (fronted, app.read_bytes())):
        with open(path, "wb") as f:
            f.write(head)
            f.truncate(4 << 30)
    limit = {resource.RLIMIT_DATA: 512 << 20}
    refused(cli("inspect", str(zeros), limits=limit), f"{zeros}: not a PE32+ image: no MZ header at offset 0")
    out = ok(cli("inspect", str(fronted), limits=limit))
    assert out.startswith(f"{fronted}: PE32+ x86_64, subsystem 10 (EFI application), unsigned") and ".text" in out


@root_only
def test_outputs_on_a_read_only_or_full_filesystem(tmp_path: Path, signing: tuple[Path, Path, Path]) -> None:
    """Every verb writing onto a read-only filesystem, or one too full for its output, is one line naming its
    output (not the temporary file it made), and leaves nothing there."""
    app, key, cert = signing
    src = tmp_path / "hello.txt"
    src.write_text("hello\n")
    verbs = {"esp": ["esp", "--extra", f"{src}=hello.txt", "-o"],
             "sign": ["sign", str(app), "--key", str(key), "--cert", str(cert), "-o"],
             "uki": ["uki", "--stub", str(app), "--linux", str(app), "-o"],
             "cache-disk": ["cache-disk", "-o"]}
    with tmpfs(tmp_path / "ro", "size=64k,ro") as ro, tmpfs(tmp_path / "full", "size=4k") as full:
        for name, args in verbs.items():
            out = ro / f"{name}.out"
            refused(cli(*args, str(out)), f"{out}: cannot write", "Read-only file system")
            if name != "cache-disk":  # (mkfs.fat's own lines follow the error line there)
                out = full / f"{name}.out"
                refused(cli(*args, str(out)), f"{out}: cannot write", "No space left on device")
            assert os.listdir(full) == [], name
        refused(cli("genkey", "-d", str(ro)), f"{ro}/db.key: cannot write", "Read-only file system")
