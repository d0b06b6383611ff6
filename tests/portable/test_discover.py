"""Kernel discovery on a real ext4 image (Debian naming): newest version first, initrd matched by version."""

import io
import os

from bootplan import discover
from diskfs import open_filesystem
from diskfs.blockdev import FileDevice


def test_debian_layout_newest_first():
    fs = open_filesystem(FileDevice(os.getenv("CLOUDBOOT_TESTDATA") + "/ext4-4k.img"))
    found = discover.find(fs)
    assert [c.version for c in found] == ["6.12.117-amd64", "6.1.0-9-amd64"]
    assert found[0].linux == "/boot/vmlinuz-6.12.117-amd64"
    assert found[0].initrd == ["/boot/initrd.img-6.12.117-amd64"]
    assert found[1].initrd == []  # no initrd of that version: none guessed


class _Tree:
    """A directory tree in memory with the three calls discovery uses."""

    def __init__(self, files):
        self.files = files

    def listdir(self, path):
        prefix = path.rstrip("/") + "/"
        names = set()
        for f in self.files:
            if f.startswith(prefix):
                names.add(f[len(prefix):].split("/")[0])
        if not names:
            raise OSError(path)
        return sorted(names)

    def exists(self, path):
        return path in self.files

    def read(self, path):
        return self.files[path]

    def open(self, path):
        return io.BytesIO(self.files[path])


K = b"MZ\x00\x00 an EFI-stub kernel"


def test_arch_and_alpine_naming():
    arch = discover.find(_Tree({"/boot/vmlinuz-linux": K, "/boot/initramfs-linux.img": b"",
                                "/boot/initramfs-linux-fallback.img": b""}))
    assert [(c.linux, c.initrd) for c in arch] == [("/boot/vmlinuz-linux", ["/boot/initramfs-linux.img"])]
    alpine = discover.find(_Tree({"/boot/vmlinuz-lts": K, "/boot/initramfs-lts": b""}))
    assert [(c.linux, c.initrd) for c in alpine] == [("/boot/vmlinuz-lts", ["/boot/initramfs-lts"])]


def test_bls_entries_win_and_rescue_loses():
    tree = _Tree({
        "/boot/loader/entries/a-6.8.conf": b"title F\nversion 6.8.9\nlinux /vmlinuz-6.8.9\n"
                                           b"initrd /initramfs-6.8.9.img\noptions root=UUID=1 ro\n",
        "/boot/vmlinuz-6.8.9": K, "/boot/initramfs-6.8.9.img": b"",
        "/boot/vmlinuz-0-rescue-abc": K, "/boot/vmlinuz-6.2.0": K,
    })
    found = discover.find(tree)
    assert found[0].source.startswith("BLS entry") and found[0].linux == "/boot/vmlinuz-6.8.9"
    assert found[0].initrd == ["/boot/initramfs-6.8.9.img"] and found[0].options == "root=UUID=1 ro"
    names = [c.version for c in found[1:]]
    assert names == ["6.2.0", "0-rescue-abc"]  # vmlinuz-6.8.9 is the BLS entry's kernel: listed once


def test_opensuse_arm64_image_naming():
    suse = discover.find(_Tree({"/boot/Image-6.4.0-150600.23.25-default": K, "/boot/Image": K,
                                "/boot/initrd-6.4.0-150600.23.25-default": b"", "/boot/initrd": b""}))
    assert [(c.version, c.linux, c.initrd) for c in suse] == [
        ("6.4.0-150600.23.25-default", "/boot/Image-6.4.0-150600.23.25-default",
         ["/boot/initrd-6.4.0-150600.23.25-default"])]


def test_files_that_are_not_kernels_are_skipped_with_a_reason():
    """Ubuntu's placeholder vmlinuz, a truncated-to-nothing file, gzip and zstd kernels."""
    logged = []
    tree = _Tree({"/boot/vmlinuz-7.0": b"placeholder", "/boot/vmlinuz-6.9": b"",
                  "/boot/vmlinuz-6.8": b"\x1f\x8b\x08\x00", "/boot/vmlinuz-6.7": b"\x28\xb5\x2f\xfd\x00"})
    found = discover.find(tree, log=logged.append)
    assert [c.version for c in found] == ["6.8", "6.7"]
    assert logged == ["skipping /boot/vmlinuz-7.0: not a kernel image (starts with b'plac')",
                      "skipping /boot/vmlinuz-6.9: not a kernel image (starts with b'')"]
