"""ext4 reader against debugfs (e2fsprogs) as the oracle, and fuzzed metadata giving only diskfs errors."""

from __future__ import annotations

import os
import subprocess

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diskfs import DiskfsError, open_filesystem
from diskfs.blockdev import FileDevice, MemoryDevice


def _debugfs(image: str, request: str) -> bytes:
    return subprocess.run(["debugfs", "-R", request, image], capture_output=True, check=True).stdout


def test_listing_and_contents_match_debugfs() -> None:
    for name in ("ext4-4k.img", "ext2.img", "ext4-frag.img"):
        image = os.path.join(os.environ["CLOUDBOOT_TESTDATA"], name)
        fs = open_filesystem(FileDevice(image))
        listing = _debugfs(image, "ls -p /").decode().splitlines()
        fields = [line.split("/") for line in listing if line.count("/") >= 6]
        theirs = sorted(f[5] for f in fields if f[1] != "0")  # inode 0: a deleted entry
        assert fs.listdir("/") == sorted(n for n in theirs if n not in (".", ".."))
        for path in ["/big.bin"] if "frag" in name else ["/boot/vmlinuz-6.12.117-amd64", "/etc/file-0042"]:
            assert fs.read(path) == _debugfs(image, f"cat {path}")


@settings(max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_fuzzed_metadata_only_raises_diskfs_errors(data: st.DataObject) -> None:
    image = os.path.join(os.environ["CLOUDBOOT_TESTDATA"], "ext4-1k.img")
    with open(image, "rb") as f:
        raw = bytearray(f.read(4 << 20))
    # Superblock, group descriptors, the start of the inode table and the first directory blocks.
    for _ in range(data.draw(st.integers(1, 6))):
        raw[data.draw(st.integers(1024, 300 * 1024))] = data.draw(st.integers(0, 255))
    dev = MemoryDevice(bytes(raw))
    try:
        fs = open_filesystem(dev)
        if fs is not None:
            for name in fs.listdir("/")[:5]:
                fs.lookup("/" + name)
            fs.read("/etc/hostname")
    except DiskfsError:
        pass
