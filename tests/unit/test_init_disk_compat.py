"""Disk mode as the original and GRUB behave (REFERENCE §4): a damaged disk in a LABEL=/UUID= scan is reported
and skipped; a pinned kernel gets its version's initrd; a disk kernel without a BLS entry gets the distro's
GRUB arguments. Driven through disk.prepare over image files made by the real mkfs.ext4 and sfdisk."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from cloudboot.init import disk
from cloudboot.init.errors import InitError
from tests.unit.test_init_pieces import _ext4


def _damaged_gpt(tmp: Path) -> Path:
    """A GPT disk (sfdisk) cut after its primary header: neither header copy can be read whole."""
    img = tmp / "damaged.img"
    with open(img, "wb") as f:
        f.truncate(4 << 20)
    subprocess.run(["sfdisk", "-q", str(img)], input=b"label: gpt\nstart=2048, size=4096, name=p1\n",
                   check=True, capture_output=True)
    with open(img, "r+b") as f:
        f.truncate(1024)
    return img


def test_damaged_disk_is_reported_and_the_scan_goes_on(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    damaged = _damaged_gpt(tmp_path)
    good = _ext4(tmp_path, "good", "CBGOOD", {"boot/vmlinuz-6.1.0-9-amd64": b"MZ k"}, partitioned=True)
    for spec in ("LABEL=CBGOOD", "UUID=11111111-2222-3333-4444-555555555555"):
        t = disk.prepare({"cloudboot.disk": spec}, str(tmp_path / "run"),
                         disks_fn=lambda: [str(damaged), str(tmp_path / "no-such-disk"), str(good)])
        assert Path(t.kernel).read_bytes() == b"MZ k"
    out = capsys.readouterr().out
    assert f"disk: {damaged}: skipped, cannot be read: {damaged}: protective MBR but no valid GPT header" in out
    assert f"disk: cannot open {tmp_path / 'no-such-disk'}" in out
    with pytest.raises(InitError) as info:  # no match: the listing still names the damaged disk and why
        disk.prepare({"cloudboot.disk": "LABEL=NOPE", "cloudboot.disk.wait": "0.3"}, str(tmp_path / "run"),
                     disks_fn=lambda: [str(damaged), str(good)])
    assert f"{damaged}: <partition table error:" in str(info.value) and "label='CBGOOD'" in str(info.value)
    assert capsys.readouterr().out.count("skipped, cannot be read") == 1  # once, not on every poll


@pytest.mark.parametrize(("kernel", "initrd"), [
    ("/boot/vmlinuz-6.1.0-9-amd64", "/boot/initrd.img-6.1.0-9-amd64"),
    ("/boot/vmlinuz-lts", "/boot/initramfs.lts"),
    ("/boot/vmlinuz-6.8.5-301.fc40.x86_64", "/boot/initramfs-6.8.5-301.fc40.x86_64.img"),
    ("/vmlinuz", "/boot/initrd.img-6.1.0-9-amd64"),  # Debian's symlink lends its target's version
    ("/boot/vmlinuz-9.9", None),  # no initrd of its version: none, never another version's
])
def test_pinned_kernel_gets_its_versions_initrd(tmp_path: Path, kernel: str, initrd: str | None) -> None:
    files = {"boot/vmlinuz-6.1.0-9-amd64": b"MZ deb", "boot/initrd.img-6.1.0-9-amd64": b"deb initrd",
             "boot/initrd.img-6.12.1-amd64": b"other version", "boot/vmlinuz-lts": b"MZ alpine",
             "boot/initramfs.lts": b"alpine initrd", "boot/vmlinuz-6.8.5-301.fc40.x86_64": b"MZ fedora",
             "boot/initramfs-6.8.5-301.fc40.x86_64.img": b"fedora initrd", "boot/vmlinuz-9.9": b"MZ lone"}
    img = _ext4(tmp_path, "pin", "PIN", files, partitioned=False)
    subprocess.run(["debugfs", "-w", "-R", "symlink /vmlinuz boot/vmlinuz-6.1.0-9-amd64", str(img)], check=True,
                   capture_output=True)
    t = disk.prepare({"cloudboot.disk": "LABEL=PIN", "cloudboot.disk.kernel": kernel}, str(tmp_path / "run"),
                     disks_fn=lambda: [str(img)])
    if initrd is None:
        assert t.initrd is None
    else:
        assert Path(t.initrd).read_bytes() == files[initrd[1:]]
    t = disk.prepare({"cloudboot.disk": "LABEL=PIN", "cloudboot.disk.kernel": kernel,
                      "cloudboot.disk.initrd": "/boot/initrd.img-6.12.1-amd64"}, str(tmp_path / "run"),
                     disks_fn=lambda: [str(img)])
    assert Path(t.initrd).read_bytes() == b"other version"  # a pinned initrd wins


def test_distro_grub_arguments_without_bls(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Debian's cloud image keeps console=ttyS0 in /etc/default/grub.d: the init passes it (the operator's
    cloudboot.cmdline after it), and says where the arguments came from."""
    files = {"boot/vmlinuz-6.12.10-cloud-amd64": b"MZ k",
             "etc/default/grub": b'GRUB_CMDLINE_LINUX_DEFAULT="quiet"\nGRUB_CMDLINE_LINUX=""\n',
             "etc/default/grub.d/50-cloudimg.cfg": b"GRUB_CMDLINE_LINUX_DEFAULT='console=tty1 console=ttyS0'\n"}
    img = _ext4(tmp_path, "deb", "DEB", files, partitioned=True)
    t = disk.prepare({"cloudboot.disk": "LABEL=DEB", "cloudboot.cmdline": "panic=-1"}, str(tmp_path / "run"),
                     disks_fn=lambda: [str(img)])
    assert t.cmdline == "root=UUID=11111111-2222-3333-4444-555555555555 ro console=tty1 console=ttyS0 panic=-1"
    assert ("disk: kernel arguments from /etc/default/grub + /etc/default/grub.d/50-cloudimg.cfg: "
            "root=UUID=11111111-2222-3333-4444-555555555555 ro console=tty1 console=ttyS0") in capsys.readouterr().out
