"""libzstd's decompressor for the firmware, from Debian's `libzstd` source package (pinned).

The firmware links lib/common + lib/decompress into its `_zstd` module (firmware/uefi_port/modzstd.c), which
compat.zstd uses when present: the portable Python decoder runs at ~0.1 MB/s under QEMU TCG, too slow for a
kernel. `ZSTD_DIR=` uses another tree.
"""

from __future__ import annotations

from pathlib import Path

from cloudboot.toolchain import debsource

VERSION = "1.5.7"
DEB_VERSION = "1.5.7+dfsg-1"
SUITE = "trixie"
PINNED = {
    "libzstd_1.5.7+dfsg.orig.tar.xz": "0c092ef267edce57ba7f3f2645c861f72eaf5e76273c6c3632869423464b90a5",
    "libzstd_1.5.7+dfsg-1.debian.tar.xz": "5e88424d919941291f79e1bfada6cb1a6f748671d9de7d4b7d931f361f183a15",
    "libzstd_1.5.7+dfsg-1.dsc": "8f6ab97fa772d921334e50fa5756a0951e23c718dc913e43a228f28c1a23adf9",
}


def source_dir() -> Path:
    """The zstd tree whose lib/ the firmware compiles: ZSTD_DIR, or the pinned Debian source."""
    return debsource.tree("libzstd", DEB_VERSION, SUITE, PINNED, "ZSTD_DIR", "lib/zstd.h")
