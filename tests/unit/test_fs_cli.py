"""`cloud-boot fs info|ls|cat|stat` against a GPT disk with an ext4, an XFS and a btrfs partition (made by the real
mkfs tools, tests/portable/images.py): listings and file bytes equal the source tree; errors are one line."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

KERNEL = "/boot/vmlinuz-6.1.0-9-amd64"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from cloudboot.cli import main; raise SystemExit(main())",
                           "fs", *args], capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def disk(testdata: str) -> str:
    return str(Path(testdata) / "gpt-multi.img")


def manifest(testdata: str) -> dict[str, list[str]]:
    out = {}
    for line in (Path(testdata) / "tree.manifest").read_text(encoding="utf-8").splitlines():
        kind, path, size, digest, _ = line.split("\t")
        out[path] = [kind, size, digest]
    return out


def test_info_lists_the_partitions(disk: str) -> None:
    proc = run("info", disk)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout.decode()
    assert "gpt disk 22222222-3333-4444-5555-666666666666" in text
    for kind, name in (("ext4", "boot"), ("xfs", "root"), ("btrfs", "home")):
        assert kind in text and f"partlabel '{name}'" in text
    proc = run("info", disk + "@3")
    assert proc.returncode == 0 and "type: btrfs" in proc.stdout.decode() and "csum: crc32c" in proc.stdout.decode()


@pytest.mark.parametrize("part", ["1", "2", "3", "PARTLABEL=root", "LABEL=GPT-MULTI-BTRFS"])
def test_ls_cat_stat_agree_with_the_source(disk: str, testdata: str, part: str) -> None:
    want = manifest(testdata)
    spec = f"{disk}@{part}"
    proc = run("ls", spec, "/boot")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().split() == sorted(p.rsplit("/", 1)[1] for p in want if p.startswith("/boot/"))
    proc = run("cat", spec, KERNEL)
    assert proc.returncode == 0, proc.stderr
    assert hashlib.sha256(proc.stdout).hexdigest() == want[KERNEL][2]
    proc = run("cat", spec, "/vmlinuz")  # through a symlink
    assert hashlib.sha256(proc.stdout).hexdigest() == want["/boot/vmlinuz-6.12.117-amd64"][2]
    proc = run("stat", spec, "/etc/hostname")
    assert proc.returncode == 0 and "size: 11" in proc.stdout.decode()
    proc = run("ls", "-l", spec, "/")
    assert "vmlinuz -> boot/vmlinuz-6.12.117-amd64" in proc.stdout.decode()
    proc = run("ls", spec, "/gr\u00fc\u00dfe")
    assert sorted(proc.stdout.decode().split()) == sorted(["\U0001f600", "\u65e5\u672c\u8a9e.txt"])


def test_partuuid_and_whole_images(disk: str, testdata: str) -> None:
    from diskfs.blockdev import FileDevice
    from diskfs.partition import partitions

    guid = partitions(FileDevice(disk))[0].part_guid
    proc = run("cat", f"{disk}@PARTUUID={guid.upper()}", "/etc/hostname")
    assert proc.returncode == 0 and proc.stdout == b"cloud-boot\n"
    proc = run("cat", str(Path(testdata) / "btrfs-lzo.img"), "/etc/hostname")
    assert proc.stdout == b"cloud-boot\n"
    proc = run("ls", "--subvol", "@/home", str(Path(testdata) / "btrfs-subvol.img"), "/user")
    assert proc.stdout.decode().split() == ["notes"]
    raid = Path(testdata) / "btrfs-raid1.img"
    proc = run("info", str(raid), "--device", str(raid.with_suffix(".dev1")))
    assert "devices: 2 of 2" in proc.stdout.decode(), proc.stderr


@pytest.mark.parametrize("args, words", [
    (("cat", "{disk}@1", "/nope"), "no such file"),
    (("ls", "{disk}@9", "/"), "no partition 9"),
    (("ls", "{disk}@LABEL=NOPE", "/"), "LABEL=NOPE"),
    (("ls", "{disk}@bogus", "/"), "bogus is neither a partition (a number, LABEL="),
    (("cat", "{disk}@1", "/boot"), "is a directory"),
    (("ls", "{disk}@1", "/etc/hostname/x"), "not a directory"),
    (("stat", "{disk}@1", "/etc/loop-a/x"), "symbolic links"),
    (("ls", "/nonexistent.img", "/"), "no such file"),
    (("info", "{disk}@1", "--device", "/nonexistent"), "cannot open"),
])
def test_errors_are_one_line(disk: str, args: tuple[str, ...], words: str) -> None:
    proc = run(*(a.format(disk=disk) for a in args))
    err = proc.stderr.decode()
    assert proc.returncode == 1 and err.count("\n") == 1 and err.startswith("cloud-boot: error:"), err
    assert words in err


def test_truncated_image_is_a_clean_error(tmp_path: Path, testdata: str) -> None:
    bad = tmp_path / "cut.img"
    with open(Path(testdata) / "btrfs.img", "rb") as f:
        bad.write_bytes(f.read(0x10000 + 4096))
    proc = run("ls", str(bad), "/")
    err = proc.stderr.decode()
    assert proc.returncode == 1 and err.count("\n") == 1 and ("outside" in err or "not mapped" in err), err


def test_luks_images_with_passphrase_and_key_files(testdata: str, tmp_path: Path) -> None:
    want = manifest(testdata)
    pw = tmp_path / "pw"
    pw.write_bytes("correct horse \u2713\n".encode())  # a passphrase file: its first line
    key = tmp_path / "key"
    key.write_bytes("correct horse \u2713".encode())  # a key file: its exact bytes
    for image in ("luks1-xts-sha512.img", "luks2-argon2i.img"):
        path = str(Path(testdata) / image)
        for flag, f in (("--passphrase-file", pw), ("--key-file", key)):
            proc = run("cat", flag, str(f), path, KERNEL)
            assert proc.returncode == 0, proc.stderr
            assert hashlib.sha256(proc.stdout).hexdigest() == want[KERNEL][2], (image, flag)
        proc = run("info", "--passphrase-file", str(pw), path)
        assert proc.returncode == 0 and "(LUKS" in proc.stdout.decode(), proc.stderr
    path = str(Path(testdata) / "luks2-argon2id.img")
    proc = run("info", path)  # no key: the container is named
    assert proc.returncode == 0 and "luks2 label 'luks2-argon2id'" in proc.stdout.decode()
    for args, message in (
            (["ls"], "LUKS2 is encrypted: a passphrase or key file is needed to open it"),
            (["ls", "--key-file", str(pw)], "LUKS2: wrong passphrase: no keyslot opens with it (tried keyslots 0, 1)"),
            (["ls", "--passphrase-file", str(pw), "--luks-limit", "max_memory_kib=1024"],
             "Argon2 memory in KiB 16384 is over the limit of 1024 (raise the LUKS limit max_memory_kib"),
            (["ls", "--passphrase-file", str(pw), "--luks-limit", "max_ram=1"], "LUKS limit 'max_ram=1': want NAME="),
            (["ls", "--passphrase-file", str(tmp_path / "none")], "none: cannot read")):
        proc = run(*args, path)
        err = proc.stderr.decode()
        assert proc.returncode != 0 and message in err and len(err.strip().splitlines()) == 1, (args, err)
        assert "correct horse" not in err


def test_zfs_datasets_snapshots_and_missing_devices(testdata: str) -> None:
    want = manifest(testdata)
    t = Path(testdata)
    pool = "cbzfsraidz2"
    devs = ["--device", str(t / "zfs-raidz2.dev3")]  # two of four devices missing
    proc = run("cat", *devs, f"{t / 'zfs-raidz2.img'}@{pool}/data", KERNEL)
    assert proc.returncode == 0, proc.stderr
    assert hashlib.sha256(proc.stdout).hexdigest() == want[KERNEL][2]
    proc = run("info", *devs, f"{t / 'zfs-raidz2.img'}@{pool}/data")
    assert "devices: 2 found, 2 missing" in proc.stdout.decode()
    single = t / "zfs-single.img"
    proc = run("cat", f"{single}@ROOT/debian@installed", "/etc/hostname")  # the pool name may be left out
    assert proc.returncode == 0 and proc.stdout == b"cloud-boot\n", proc.stderr
    proc = run("ls", f"{single}@cbzfssingle/ROOT/debian", "/boot")  # a child dataset at its mountpoint
    assert proc.stdout.decode().split() == sorted(p.rsplit("/", 1)[1] for p in want if p.startswith("/boot/"))
    for args, message in (
            (["ls", f"{single}@nope"], "ZFS pool cbzfssingle has no dataset cbzfssingle/nope (it has"),
            (["ls", f"{t / 'zfs-raidz2.img'}@{pool}/data"], "no copy could be read (missing devices: 3)")):
        proc = run(*args)
        err = proc.stderr.decode()
        assert proc.returncode != 0 and message in err and len(err.strip().splitlines()) == 1, err


def test_luks_and_zfs_inside_qcow2_and_udif(testdata: str, tmp_path: Path) -> None:
    """Images addressed as any other (diskimage.address): LUKS in a compressed qcow2 and in a UDZO image, a ZFS
    dataset of a raidz2 pool whose devices are qcow2 images (qemu-img's, the test UDIF writer's)."""
    from tests.diskimages import convert
    from tests.udifwrite import write as udif_write

    want = manifest(testdata)
    t = Path(testdata)
    pw = tmp_path / "pw"
    pw.write_bytes("correct horse \u2713\n".encode())
    convert(tmp_path / "luks1.qcow2", t / "luks1-xts-sha512.img", "-f", "raw", "-c")  # raw: not QEMU's LUKS
    udif_write(t / "luks2-pbkdf2.img", tmp_path / "luks2.dmg", "UDZO")
    for image in ("luks1.qcow2", "luks2.dmg"):
        proc = run("cat", "--passphrase-file", str(pw), str(tmp_path / image), KERNEL)
        assert proc.returncode == 0, proc.stderr
        assert hashlib.sha256(proc.stdout).hexdigest() == want[KERNEL][2], image
    proc = run("info", str(tmp_path / "luks2.dmg"))  # no key: the image format and the container named
    assert proc.returncode == 0 and "udif image (UDZO" in proc.stdout.decode() and "luks2 label" in proc.stdout.decode()
    convert(tmp_path / "raidz2.qcow2", t / "zfs-raidz2.img")
    convert(tmp_path / "raidz2-dev3.qcow2", t / "zfs-raidz2.dev3")
    proc = run("cat", "--device", str(tmp_path / "raidz2-dev3.qcow2"), f"{tmp_path / 'raidz2.qcow2'}@cbzfsraidz2/data",
               KERNEL)
    assert proc.returncode == 0, proc.stderr
    assert hashlib.sha256(proc.stdout).hexdigest() == want[KERNEL][2]
    proc = run("ls", f"{tmp_path / 'luks1.qcow2'}@pool/data")
    err = proc.stderr.decode()
    assert proc.returncode == 1 and "pool/data is neither a partition" in err and err.count("\n") == 1, err


@pytest.mark.openzfs
def test_openzfs_encrypted_datasets(testdata: str, tmp_path: Path) -> None:
    """A pool OpenZFS made in partition 1 (as it does on a whole disk); its encrypted datasets opened with
    --passphrase-file (keyformat=passphrase) and --key-file (keyformat=raw)."""
    want = manifest(testdata)
    image = Path(testdata) / "openzfs.img"
    pw = tmp_path / "pw"
    pw.write_bytes(b"openzfs passphrase\n")
    raw = tmp_path / "raw"
    raw.write_bytes(bytes(range(32)))
    for flag, f, dataset in (("--passphrase-file", pw, "enc-pass"), ("--key-file", raw, "enc-raw")):
        proc = run("cat", flag, str(f), f"{image}@cbopenzfs/{dataset}", KERNEL)
        assert proc.returncode == 0, proc.stderr
        assert hashlib.sha256(proc.stdout).hexdigest() == want[KERNEL][2], dataset
    proc = run("ls", "--key-file", str(pw), f"{image}@cbopenzfs/enc-raw")
    err = proc.stderr.decode()
    assert proc.returncode != 0 and "a raw key is 32 bytes, not 19" in err and len(err.strip().splitlines()) == 1, err


def test_info_on_a_file_that_is_not_a_disk_image(tmp_path: Path) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_bytes(b"just some text, no partition table and no superblock\n" * 2000)
    proc = run("info", str(junk))
    err = proc.stderr.decode()
    assert proc.returncode == 1 and not proc.stdout, proc.stdout
    assert err == f"cloud-boot: error: {junk}: not a disk image: no partition table, and no filesystem or " \
                  "container that diskfs recognises\n", err
    empty = tmp_path / "empty.img"
    empty.write_bytes(b"")
    proc = run("info", str(empty))
    assert proc.returncode == 1 and proc.stderr.decode().count("\n") == 1, proc.stderr


def test_json_output(disk: str) -> None:
    import json

    info = json.loads(run("info", disk, "--json").stdout)
    assert info["table"] == "gpt" and [p["type"] for p in info["partitions"]] == ["ext4", "xfs", "btrfs"]
    assert json.loads(run("info", disk + "@3", "--json").stdout)["type"] == "btrfs"
    names = [e["name"] for e in json.loads(run("ls", disk + "@1", "/etc", "--json").stdout)]
    assert "hostname" in names
    st = json.loads(run("stat", disk + "@2", "/etc/hostname", "--json").stdout)
    assert st["size"] == 11 and st["type"] == "f"
    link = json.loads(run("stat", disk + "@2", "/vmlinuz", "--json").stdout)
    assert link["type"] == "l" and link["target"] == "boot/vmlinuz-6.12.117-amd64"
