"""lwIP, the firmware's TCP/IP stack, from Debian's `lwip` source package (pinned).

Debian's MicroPython `+ds` source ships `lib/lwip` empty; MicroPython 1.25's `extmod/modlwip.c` (the `socket`
module) is written against lwIP 2.2, which is what trixie has. The firmware compiles lwIP's core, IPv4,
DHCP, DNS and Ethernet/ARP (firmware/uefi_port/Makefile). `LWIP_DIR=` uses another tree.
"""

from __future__ import annotations

from pathlib import Path

from cloudboot.toolchain import debsource

VERSION = "2.2.1"
DEB_VERSION = "2.2.1+dfsg1-1+deb13u1"
SUITE = "trixie"
PINNED = {
    "lwip_2.2.1+dfsg1.orig.tar.xz": "83729c274c499d3348e9fbbe043a3113f3fa8953e7efddc7c21c7fcbb1f2b7b1",
    "lwip_2.2.1+dfsg1-1+deb13u1.debian.tar.xz": "faa343b3c76d69080240ae1323932b7348fa1d0042f6ad29bd286246660720a9",
    "lwip_2.2.1+dfsg1-1+deb13u1.dsc": "07ecb7122b2882a5265c6d1413947dd9a054d5ae25150b7042885d3f3d0b5aad",
}


def source_dir() -> Path:
    """The lwIP tree whose src/ the firmware compiles: LWIP_DIR, or the pinned Debian source."""
    return debsource.tree("lwip", DEB_VERSION, SUITE, PINNED, "LWIP_DIR", "src/include/lwip/init.h")
