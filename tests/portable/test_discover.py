"""Kernel discovery on a real ext4 image (Debian naming): newest version first, initrd matched by version."""

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
