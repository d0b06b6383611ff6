"""Mbed TLS, the firmware's TLS and its fast SHA-256 and ECDSA, from Debian's `mbedtls` source package (pinned).

Debian's MicroPython `+ds` source ships `lib/mbedtls` empty; MicroPython 1.25's `extmod/modtls_mbedtls.c`
(the `tls`/`ssl` module) and `extmod/modhashlib.c` build against Mbed TLS 3.x, trixie's 3.6. Only
`library/*.c` is compiled, under firmware/uefi_port/cb_mbedtls_config.h. `MBEDTLS_DIR=` uses another tree.
"""

from __future__ import annotations

from pathlib import Path

from cloudboot.toolchain import debsource

VERSION = "3.6.6"
DEB_VERSION = "3.6.6-0.1~deb13u1"
SUITE = "trixie"
PINNED = {
    "mbedtls_3.6.6.orig.tar.bz2": "8fb65fae8dcae5840f793c0a334860a411f884cc537ea290ce1c52bb64ca007a",
    "mbedtls_3.6.6-0.1~deb13u1.debian.tar.xz": "210466c522eeebc85cf2f76bd5aef935b4ebac465559cc0a84f9e73a8ed6601c",
    "mbedtls_3.6.6-0.1~deb13u1.dsc": "eb9ed1adbbddcb0d00276fac6fcee0056c64ce01481c2522a16dca75792eb5eb",
}


def source_dir() -> Path:
    """The Mbed TLS tree whose library/ the firmware compiles: MBEDTLS_DIR, or the pinned Debian source."""
    return debsource.tree("mbedtls", DEB_VERSION, SUITE, PINNED, "MBEDTLS_DIR", "include/mbedtls/ssl.h")
