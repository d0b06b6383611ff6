"""cosign on the host: key files (cosign's encrypted format and plain PEM), signing, and the verifier the
portable `oci.cosign` checks call.

cosign's private key file is PEM `ENCRYPTED SIGSTORE PRIVATE KEY` (older: `ENCRYPTED COSIGN PRIVATE KEY`) around
JSON `{"kdf": {"name": "scrypt", "params": {"N", "r", "p"}, "salt"}, "cipher": {"name": "nacl/secretbox",
"nonce"}, "ciphertext"}`: scrypt(password) keys an XSalsa20-Poly1305 secretbox holding a PKCS#8 DER key.
`cryptography` has scrypt but not XSalsa20, so the secretbox is implemented here (small, keys only).
"""

from __future__ import annotations

import base64
import json
import os
import struct
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

import oci
from cloudboot.errors import CloudBootError
from cloudboot.init.signature import Verifier as _KeyVerifier
from cloudboot.registry.push import canonical_json, manifest_json, push_bytes
from oci.client import Client, check_manifest, parse_json_object
from oci.cosign import signature_tag, simple_signing_payload
from oci.errors import NotFound, OciError
from oci.ref import Reference

ENCRYPTED_TYPES = ("ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY")

# ---- XSalsa20-Poly1305 (NaCl secretbox) -------------------------------------------------------------------------

_M32 = 0xFFFFFFFF
_SIGMA = struct.unpack("<4I", b"expand 32-byte k")


def _rotl(v: int, c: int) -> int:
    return ((v << c) & _M32) | (v >> (32 - c))


def _salsa_rounds(x: list[int]) -> list[int]:
    x = list(x)
    for _ in range(10):
        for a, b, c, d in ((0, 4, 8, 12), (5, 9, 13, 1), (10, 14, 2, 6), (15, 3, 7, 11),
                           (0, 1, 2, 3), (5, 6, 7, 4), (10, 11, 8, 9), (15, 12, 13, 14)):
            x[b] ^= _rotl((x[a] + x[d]) & _M32, 7)
            x[c] ^= _rotl((x[b] + x[a]) & _M32, 9)
            x[d] ^= _rotl((x[c] + x[b]) & _M32, 13)
            x[a] ^= _rotl((x[d] + x[c]) & _M32, 18)
    return x


def _state(key: bytes, n16: bytes) -> list[int]:
    k = struct.unpack("<8I", key)
    n = struct.unpack("<4I", n16)
    return [_SIGMA[0], k[0], k[1], k[2], k[3], _SIGMA[1], n[0], n[1], n[2], n[3], _SIGMA[2],
            k[4], k[5], k[6], k[7], _SIGMA[3]]


def _hsalsa20(key: bytes, nonce16: bytes) -> bytes:
    x = _salsa_rounds(_state(key, nonce16))
    return struct.pack("<8I", *(x[i] for i in (0, 5, 10, 15, 6, 7, 8, 9)))


def _salsa20_stream(key: bytes, nonce8: bytes, length: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < length:
        s = _state(key, nonce8 + struct.pack("<Q", counter))
        x = _salsa_rounds(s)
        out += struct.pack("<16I", *((x[i] + s[i]) & _M32 for i in range(16)))
        counter += 1
    return bytes(out[:length])


def _poly1305(key: bytes, msg: bytes) -> bytes:
    r = int.from_bytes(key[:16], "little") & 0x0FFFFFFC0FFFFFFC0FFFFFFC0FFFFFFF
    s = int.from_bytes(key[16:], "little")
    p = (1 << 130) - 5
    acc = 0
    for i in range(0, len(msg), 16):
        block = msg[i:i + 16] + b"\x01"
        acc = (acc + int.from_bytes(block, "little")) * r % p
    return ((acc + s) & ((1 << 128) - 1)).to_bytes(16, "little")


def secretbox_seal(key: bytes, nonce: bytes, plaintext: bytes) -> bytes:
    """NaCl secretbox: tag(16) || ciphertext."""
    sub = _hsalsa20(key, nonce[:16])
    stream = _salsa20_stream(sub, nonce[16:24], 32 + len(plaintext))
    ct = bytes(a ^ b for a, b in zip(plaintext, stream[32:], strict=True))
    return _poly1305(stream[:32], ct) + ct


def secretbox_open(key: bytes, nonce: bytes, box: bytes) -> bytes | None:
    """Plaintext, or None if the tag does not authenticate (wrong password or damaged file)."""
    import hmac

    if len(box) < 16:
        return None
    sub = _hsalsa20(key, nonce[:16])
    stream = _salsa20_stream(sub, nonce[16:24], 32 + len(box) - 16)
    tag, ct = box[:16], box[16:]
    if not hmac.compare_digest(_poly1305(stream[:32], ct), tag):
        return None
    return bytes(a ^ b for a, b in zip(ct, stream[32:], strict=True))


# ---- key files -----------------------------------------------------------------------------------------------------

def _pem_blocks(text: str) -> list[tuple[str, bytes]]:
    blocks = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if line.startswith("-----BEGIN ") and line.endswith("-----"):
            kind = line[11:-5]
            body = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith("-----END "):
                body.append(lines[i].strip())
                i += 1
            try:
                blocks.append((kind, base64.b64decode("".join(body))))
            except ValueError:
                pass
        i += 1
    return blocks


def _password(password: str | bytes | None) -> bytes:
    """The password's bytes as they were given (a non-UTF-8 byte from the environment included)."""
    if password is None:
        return os.environb.get(b"COSIGN_PASSWORD", b"")
    return password.encode("utf-8", "surrogateescape") if isinstance(password, str) else password


def load_private_key(path: Path, password: str | bytes | None = None):
    """A private key from a cosign key file (encrypted, password from arg or $COSIGN_PASSWORD) or plain PEM."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise CloudBootError(f"{path}: cannot read the key: {exc}") from None
    for kind, der in _pem_blocks(text):
        if kind in ENCRYPTED_TYPES:
            try:
                doc = json.loads(der)
                kdf, cipher = doc["kdf"], doc["cipher"]
                if kdf["name"] != "scrypt" or cipher["name"] != "nacl/secretbox":
                    raise CloudBootError(f"{path}: unsupported key encryption {kdf['name']}/{cipher['name']}")
                params = kdf["params"]
                key = Scrypt(salt=base64.b64decode(kdf["salt"]), length=32, n=params["N"], r=params["r"],
                             p=params["p"]).derive(_password(password))
                plain = secretbox_open(key, base64.b64decode(cipher["nonce"]), base64.b64decode(doc["ciphertext"]))
            except (KeyError, TypeError, ValueError) as exc:
                raise CloudBootError(f"{path}: malformed cosign key file ({exc})") from None
            if plain is None:
                raise CloudBootError(f"{path}: wrong password for the cosign key (set COSIGN_PASSWORD)")
            return serialization.load_der_private_key(plain, None)
    try:
        pw = _password(password) or None
        return serialization.load_pem_private_key(text.encode(), pw)
    except (ValueError, TypeError) as exc:
        raise CloudBootError(f"{path}: not a cosign or PEM private key ({exc})") from None


def write_encrypted_key(key, path: Path, password: str | bytes, n: int = 32768) -> None:
    """Write a private key the way `cosign generate-key-pair` does (and its public key next to it, `.pub`)."""
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    salt, nonce = os.urandom(32), os.urandom(24)
    box = secretbox_seal(Scrypt(salt=salt, length=32, n=n, r=8, p=1).derive(_password(password)), nonce, der)
    doc = {"kdf": {"name": "scrypt", "params": {"N": n, "r": 8, "p": 1}, "salt": base64.b64encode(salt).decode()},
           "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode()},
           "ciphertext": base64.b64encode(box).decode()}
    b64 = base64.b64encode(json.dumps(doc).encode()).decode()
    body = "\n".join(b64[i:i + 64] for i in range(0, len(b64), 64))
    Path(path).write_text(f"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n{body}\n"
                          "-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
    Path(path).with_suffix(".pub").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


class Verifier(_KeyVerifier):
    """The init's verifier (cloudboot.init.signature) with host-style errors and a file constructor."""

    def __init__(self, public_pem: bytes) -> None:
        try:
            super().__init__(public_pem)
        except ValueError as exc:
            raise CloudBootError(f"not a PEM public key: {exc}") from None

    @classmethod
    def from_file(cls, path: Path) -> Verifier:
        """A verifier from a `cosign.pub`-style PEM file."""
        try:
            return cls(Path(path).read_bytes())
        except OSError as exc:
            raise CloudBootError(f"{path}: {exc.strerror or exc}") from None


def sign_payload(key, payload: bytes) -> bytes:
    """cosign's signature of a payload: ECDSA P-256/SHA-256 DER (RSA and Ed25519 keys also accepted)."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(payload, ec.ECDSA(hashes.SHA256()))
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(payload, padding.PKCS1v15(), hashes.SHA256())
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(payload)
    raise CloudBootError("cosign key must be ECDSA, RSA or Ed25519")


def sign_artifact(client: Client, ref: Reference, key) -> tuple[str, str]:
    """Sign what `ref` names (an index or a manifest): push a simple-signing layer to `sha256-<hex>.sig`,
    keeping signatures already there. Returns (signed digest, signature manifest digest)."""
    _, _, digest = client.get_manifest(ref)  # exists (and, by digest, matches)
    payload = simple_signing_payload(ref.name(), digest)
    signature = base64.b64encode(sign_payload(key, payload)).decode()
    sig_ref = ref.with_tag(signature_tag(digest))
    layers: list[dict] = []
    try:
        raw, _, _ = client.get_manifest(sig_ref)
        layers = [d for d in check_manifest(parse_json_object(raw, str(sig_ref)), str(sig_ref))["layers"]]
    except NotFound:
        pass
    except OciError as exc:
        raise CloudBootError(f"{sig_ref}: existing signature manifest is unusable: {exc}") from None
    layer = push_bytes(client, sig_ref, payload, oci.MT_COSIGN_SIMPLESIGNING, {oci.ANN_COSIGN_SIGNATURE: signature})
    layers = [d for d in layers if d != layer] + [layer]
    config = {"architecture": "", "config": {}, "created": "0001-01-01T00:00:00Z",
              "history": [{"created": "0001-01-01T00:00:00Z"}], "os": "",
              "rootfs": {"diff_ids": [d["digest"] for d in layers], "type": "layers"}}
    config_desc = push_bytes(client, sig_ref, canonical_json(config), oci.MT_OCI_CONFIG)
    sig_digest = client.push_manifest(sig_ref, manifest_json(config_desc, layers), oci.MT_OCI_MANIFEST)
    return digest, sig_digest
