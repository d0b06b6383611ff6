"""FAT ESP images (pyfatfs): type by size, checked with fsck.vfat, minfo, mdir and mtype as oracles."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cloudboot.errors import CloudBootError
from cloudboot.fwbuild.hello import build_hello
from cloudboot.image.esp import MIB, build_esp, esp_size, fat_info

FILES = {"EFI/BOOT/BOOTX64.EFI": b"MZ" + bytes(range(256)) * 300,
         "EFI/BOOT/BOOTLOONGARCH64.EFI": b"MZ" + b"\x5a" * 70001,
         "EFI/Linux/cloud-boot x86_64.efi": os.urandom(1 << 20),
         "cmdline": b"console=ttyS0 cloudboot.plan=oci://example/plan\n",
         "loader/entries/a-long-entry-name.conf": b"title a\n"}


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cloudboot", *args], capture_output=True, text=True, env=env)


def _fsck(path: Path) -> str:
    proc = subprocess.run(["fsck.vfat", "-n", "-v", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout + proc.stderr
    for complaint in ("differences", "wrong", "Auto-correcting", "Invalid", "bad"):
        assert complaint not in out, out
    return out


@pytest.mark.parametrize(("size", "fat"), [(8 * MIB, 16), (48 * MIB, 16), (512 * MIB, 32)])
def test_fat_type_by_size_and_contents(tmp_path: Path, size: int, fat: int) -> None:
    image = build_esp(FILES, size)
    path = tmp_path / "esp.img"
    path.write_bytes(image)
    assert len(image) == size
    info = fat_info(image)
    out = _fsck(path)
    # fsck.vfat's own geometry: the cluster count decides the type (FAT32 needs >= 65,525 for OVMF).
    clusters = int(re.search(r"(\d+) data clusters", out).group(1))
    assert clusters == info.clusters and info.fat_type == fat
    assert (clusters >= 65525) == (fat == 32) and clusters >= 4085
    minfo = subprocess.run(["minfo", "-i", str(path), "::"], capture_output=True, text=True,
                           check=True).stdout
    assert f'disk type="FAT{fat}' in minfo
    listing = subprocess.run(["mdir", "-/", "-b", "-i", str(path), "::"], capture_output=True, text=True,
                             check=True).stdout
    assert {line[3:] for line in listing.splitlines() if not line.endswith("/")} == set(FILES)  # names, case
    for dest, data in FILES.items():
        got = subprocess.run(["mtype", "-i", str(path), "::/" + dest], capture_output=True, check=True).stdout
        assert got == data, dest


def test_sizing_rule_and_default_size() -> None:
    assert esp_size(0) == 16 * MIB  # 8 MiB rounded up to 16
    assert esp_size(4 * 400_000) == 16 * MIB  # four ~400 KB firmware files
    assert esp_size(4 * 20 * MIB) == 128 * MIB  # four 20 MiB UKIs: 120 + 8 -> 128 (REFERENCE: 96-112 for 3)
    assert len(build_esp({"a": b"x"})) == 16 * MIB


def test_too_small_and_bad_paths_are_clear_errors() -> None:
    with pytest.raises(CloudBootError, match=r"ESP of 8 MiB \(FAT16.*cannot hold the files: \d+ bytes"):
        build_esp({"EFI/Linux/big.efi": bytes(9 * MIB)}, 8 * MIB)
    with pytest.raises(CloudBootError, match="must be a multiple of 512 between 8 MiB"):
        build_esp({"a": b"x"}, 4 * MIB)
    with pytest.raises(CloudBootError, match="must be a multiple of 512"):
        build_esp({"a": b"x"}, 16 * MIB + 1)
    for bad in ("../x", "EFI//x", "a:b", "EFI/x?", "EFI/\u00e9t\u00e9", "x/."):
        with pytest.raises(CloudBootError, match="is not a valid FAT file name"):
            build_esp({bad: b"x"})
    with pytest.raises(CloudBootError, match="collides with 'EFI/BOOT/BOOTX64.EFI' .FAT names ignore case"):
        build_esp({"EFI/BOOT/BOOTX64.EFI": b"1", "efi/boot/bootx64.efi": b"2"})
    with pytest.raises(CloudBootError, match="needs 'EFI/BOOT' to be a directory"):
        build_esp({"EFI/BOOT": b"1", "EFI/BOOT/BOOTX64.EFI": b"2"})


def test_esp_verb_reproducible_and_clean_failures(tmp_path: Path) -> None:
    app = build_hello("x86_64", tmp_path)
    (tmp_path / "cmdline").write_text("console=ttyS0\n")
    args = ["esp", "--efi", f"linux/amd64={app}", "--extra", f"{tmp_path / 'cmdline'}=\\cmdline"]
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}
    outs = []
    for name in ("a.img", "b.img"):
        proc = _cli(*args, "-o", str(tmp_path / name), env=env)
        assert proc.returncode == 0 and "FAT16" in proc.stdout, proc.stderr
        outs.append((tmp_path / name).read_bytes())
    assert outs[0] == outs[1]
    listing = subprocess.run(["mdir", "-i", str(tmp_path / "a.img"), "::/EFI/BOOT"], capture_output=True,
                             text=True, check=True).stdout
    assert "BOOTX64  EFI" in listing and "2023-11-14  22:13" in listing  # SOURCE_DATE_EPOCH in UTC
    got = subprocess.run(["mtype", "-i", str(tmp_path / "a.img"), "::/cmdline"], capture_output=True).stdout
    assert got == b"console=ttyS0\n"
    later = _cli(*args, "-o", str(tmp_path / "c.img"), env={**env, "SOURCE_DATE_EPOCH": "1800000000"})
    assert later.returncode == 0 and (tmp_path / "c.img").read_bytes() != outs[0]
    for bad, message in [
        (["--extra", f"{app}=EFI/BOOT/bootx64.efi"], "would replace an EFI boot file"),
        (["--extra", f"{app}=a", "--extra", f"{app}=A"], "is already given by --extra"),
        (["--extra", f"{tmp_path / 'nope'}=a"], "--extra " + str(tmp_path / "nope") + ": No such file"),
        (["--esp-size", "9M", "--extra", f"{app}=a", "--extra", f"{app}=b", "--esp-size", "eight"],
         "invalid size 'eight'"),
        ([], "nothing to put on the ESP"),
    ]:
        out = tmp_path / "bad.img"
        proc = _cli("esp", "--efi", f"linux/amd64={app}", *bad, "-o", str(out)) if bad else _cli("esp", "-o",
                                                                                                 str(out))
        assert proc.returncode == 1 and message in proc.stderr, (bad, proc.stderr)
        assert "Traceback" not in proc.stderr and not out.exists()


def test_a_label_fat_cannot_hold_is_refused_not_truncated(tmp_path: Path) -> None:
    """`esp --label` used to cut a long label to 11 characters silently (and kept characters FAT forbids): each
    label FAT cannot hold is now one line naming the rule, nothing written; one it can hold is what fatlabel (the
    dosfstools oracle) reads back, upper case."""
    from tests.unit.hostile import cli, ok, refused

    src = tmp_path / "hello.txt"
    src.write_text("hello\n")
    out = tmp_path / "esp.img"
    for label, want in (("ABCDEFGHIJKLMNOP", "holds at most 11 characters; this one has 16"),
                        ("", "this one is empty"), ("café", "ASCII characters only ('é' is not)"),
                        ("a*b", "cannot hold '*'"), ("v1.2", "cannot hold '.'"), ("a\nb", "cannot hold '\\n'"),
                        (" lead", "cannot start with a space")):
        refused(cli("esp", "--label", label, "--extra", f"{src}=hello.txt", "-o", str(out)), "FAT volume label",
                want)
        assert not out.exists(), label
    ok(cli("esp", "--label", "my esp_2026", "--extra", f"{src}=hello.txt", "-o", str(out)))
    got = subprocess.run(["fatlabel", str(out)], capture_output=True, text=True, check=True).stdout.strip()
    assert got == "MY ESP_2026"
    _fsck(out)
