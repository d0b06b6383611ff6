"""oci.cosign.p256_point_from_pem: the key format the firmware's verifier takes (a cosign.pub of ECDSA P-256),
and one clear error for anything else. Plain asserts: CPython and MicroPython unix."""

import binascii

from oci.cosign import p256_point_from_pem

P256 = """-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEI7rRRiSLfvbXbFhZd8/wjMwAjCct
6V0D+Fnz5yXo05HC+vHTtsNpLRU7uGigCGGtCnKcXNSo7Ma+e5O1vdAnJg==
-----END PUBLIC KEY-----
"""
POINT = ("0423bad146248b7ef6d76c585977cff08ccc008c272de95d03f859f3e725e8d391c2faf1d3b6c3692d153bb868a00861ad0a"
         "729c5cd4a8ecc6be7b93b5bdd02726")
P384 = """-----BEGIN PUBLIC KEY-----
MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEQ4pZ/t31mwJ4ciQ8BwgPYigBhYZJBQyI
RZZGB6kG1YdsODFZ/NR3fUMVE2TcEg7tygaVQX5i9hnT8sLx+iiGCBdspXfeLR5M
IzrUtQNvnoYYds4bD/ITQOCQp2kNXOoa
-----END PUBLIC KEY-----
"""


def _error(text):
    try:
        p256_point_from_pem(text)
    except ValueError as exc:
        return str(exc)
    raise AssertionError("ValueError not raised")


def test_p256_key_gives_its_uncompressed_point():
    assert binascii.hexlify(p256_point_from_pem(P256)).decode() == POINT
    assert p256_point_from_pem(P256.encode()) == p256_point_from_pem("junk before\n" + P256)


def test_other_keys_and_garbage_are_refused_by_name():
    assert _error(P384) == "not an ECDSA P-256 public key (120-byte SubjectPublicKeyInfo)"
    assert _error("no pem here") == "no PEM PUBLIC KEY block"
    body = binascii.b2a_base64(b"0Y" + b"x" * 40).decode()
    short = "-----BEGIN PUBLIC KEY-----\n" + body + "-----END PUBLIC KEY-----"
    assert _error(short) == "not an ECDSA P-256 public key (42-byte SubjectPublicKeyInfo)"
