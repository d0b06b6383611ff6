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
    (("ls", "{disk}@bogus", "/"), "partition must be"),
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
