"""The firmware's cosign key and verifier. The key is a PEM (`cosign.pub`, ECDSA P-256) that
`cloud-boot firmware --cosign-key` put into the image as its `.cosign` PE section: it travels with the
signed firmware binary (Secure Boot covers it), needs no disk, and an image without it verifies nothing
(policy off, as the init without /etc/cosign.pub). The math is Mbed TLS (`_ecdsa`)."""

import hashlib

SECTION = ".cosign"


class Verifier:
    """oci.cosign's verifier interface over `_ecdsa.verify_p256`."""

    def __init__(self, point):
        self.point = point

    def verify(self, signature, payload):
        import _ecdsa

        return _ecdsa.verify_p256(self.point, hashlib.sha256(payload).digest(), signature)


def verifier():
    """The Verifier of this image's `.cosign` section, or None when it has none; ValueError for a bad key."""
    from loader import uki
    from oci.cosign import p256_point_from_pem
    from uefi import mem

    sections = uki.own_sections()
    if SECTION not in sections:
        return None
    addr, size = sections[SECTION]
    return Verifier(p256_point_from_pem(mem.read(addr, size).rstrip(b"\0")))
