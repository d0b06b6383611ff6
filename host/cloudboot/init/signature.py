"""Signature checks for cosign (the verifier `oci.cosign` calls): a PEM public key, ECDSA P-256/SHA-256 (what
cosign makes), RSA PKCS#1 v1.5 and Ed25519, through `cryptography`. Shared by init (key /etc/cosign.pub in
the initramfs) and the host's `cloud-boot pull --key`."""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa


class Verifier:
    """`verify(signature, payload)` with one public key; ValueError for a key that is not PEM."""

    def __init__(self, public_pem: bytes) -> None:
        self.key = serialization.load_pem_public_key(public_pem)

    def verify(self, signature: bytes, payload: bytes) -> bool:
        """True if `signature` is the key's signature of `payload`."""
        try:
            if isinstance(self.key, ec.EllipticCurvePublicKey):
                self.key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
            elif isinstance(self.key, rsa.RSAPublicKey):
                self.key.verify(signature, payload, padding.PKCS1v15(), hashes.SHA256())
            elif isinstance(self.key, ed25519.Ed25519PublicKey):
                self.key.verify(signature, payload)
            else:
                return False
        except (InvalidSignature, ValueError):
            return False
        return True
