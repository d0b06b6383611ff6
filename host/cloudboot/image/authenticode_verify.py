"""Does an Authenticode signature match its image? What `sbverify` checks before any trust question: the digest
the signature carries is the image's Authenticode hash, the signed attributes' messageDigest is the digest of that
signed content, and the signature over those attributes verifies with the signer's certificate (the one the
SignerInfo names, carried in the signature). Whether that certificate is trusted (a db, a CA) is not asked here.

The PKCS#7 blob is untrusted: it is walked with a bounds-checked DER reader, and anything it cannot follow is a
verdict ("not verified: ..."), never an exception."""

from __future__ import annotations

import hashlib

from cloudboot.image import authenticode as ac
from cloudboot.image.pe import PeImage

#: Digest algorithms a signature may name (OID -> hashlib name).
DIGESTS = {ac.OID_SHA256: "sha256", "1.3.14.3.2.26": "sha1", "2.16.840.1.101.3.4.2.2": "sha384",
           "2.16.840.1.101.3.4.2.3": "sha512"}
_SEQ, _SET, _OCTETS, _INT, _OID, _CTX0 = 0x30, 0x31, 0x04, 0x02, 0x06, 0xA0


class _Unreadable(ValueError):
    """The blob is not the DER shape an Authenticode signature has (said in the message)."""


class _Tlv:
    """One DER element of `buf`: its tag, where it starts (`head`) and where its content starts and stops."""

    def __init__(self, buf: bytes, pos: int, end: int) -> None:
        if pos + 2 > end:
            raise _Unreadable(f"truncated DER at byte {pos}")
        self.buf, self.head, self.tag = buf, pos, buf[pos]
        if self.tag & 0x1F == 0x1F:
            raise _Unreadable(f"multi-byte DER tag at byte {pos}")
        n = buf[pos + 1]
        if n < 0x80:
            self.start, length = pos + 2, n
        elif n == 0x80 or n > 0x84:
            raise _Unreadable(f"DER length form {n:#x} at byte {pos} (indefinite or over 4 bytes)")
        else:
            k = n & 0x7F
            if pos + 2 + k > end:
                raise _Unreadable(f"truncated DER length at byte {pos}")
            self.start, length = pos + 2 + k, int.from_bytes(buf[pos + 2:pos + 2 + k], "big")
        self.stop = self.start + length
        if self.stop > end:
            raise _Unreadable(f"DER element at byte {pos} runs past its container")

    @property
    def content(self) -> bytes:
        return self.buf[self.start:self.stop]

    @property
    def whole(self) -> bytes:
        return self.buf[self.head:self.stop]

    def children(self, *tags: int) -> list[_Tlv]:
        """The elements inside this one; with `tags`, checked to begin with those tags."""
        out, pos = [], self.start
        while pos < self.stop:
            child = _Tlv(self.buf, pos, self.stop)
            out.append(child)
            pos = child.stop
        if len(out) < len(tags) or any(c.tag != t for c, t in zip(out, tags, strict=False)):
            raise _Unreadable(f"unexpected DER structure at byte {self.head} (tags {[hex(c.tag) for c in out]})")
        return out


def der_element(blob: bytes) -> bytes:
    """The one DER element at the start of `blob` (a certificate entry is padded to 8 bytes after it);
    ValueError when it is not whole."""
    return _Tlv(blob, 0, len(blob)).whole


def _oid_is(tlv: _Tlv, dotted: str) -> bool:
    return tlv.tag == _OID and _oid_text(tlv) == dotted


def _oid_text(tlv: _Tlv) -> str:
    """The dotted form of an OID element (for messages and the DIGESTS lookup)."""
    body, nums, n = tlv.content, [], 0
    if len(body) > 64:  # no algorithm's OID is near this long; a hostile one would make huge integers
        return "?"
    for b in body:
        n = (n << 7) | (b & 0x7F)
        if not b & 0x80:
            nums.append(n)
            n = 0
    if not nums:
        return "?"
    first = min(nums[0] // 40, 2)
    return ".".join(str(x) for x in [first, nums[0] - 40 * first, *nums[1:]])


def _hash_name(alg: _Tlv) -> str:
    oid = alg.children(_OID)[0]
    name = DIGESTS.get(_oid_text(oid))
    if name is None:
        raise _Unreadable(f"digest algorithm {_oid_text(oid)} is not one sbverify knows")
    return name


def _signer_cert(certs: list, sid: _Tlv):
    """The certificate the SignerInfo's issuer and serial number name, or None."""
    if sid.tag != _SEQ:
        raise _Unreadable("the signer is named by a key identifier, not issuer and serial number")
    issuer, serial = sid.children(_SEQ, _INT)[:2]
    number = int.from_bytes(serial.content, "big", signed=True)
    for cert in certs:
        if cert.serial_number == number and cert.issuer.public_bytes() == issuer.whole:
            return cert
    return None


def _verify_signature(cert, signature: bytes, signed: bytes, hash_name: str) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

    algorithm = {"sha1": hashes.SHA1, "sha256": hashes.SHA256, "sha384": hashes.SHA384,
                 "sha512": hashes.SHA512}[hash_name]()
    key = cert.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signed, padding.PKCS1v15(), algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, signed, ec.ECDSA(algorithm))
        else:
            raise _Unreadable(f"the signer's key is {type(key).__name__}, neither RSA nor EC")
    except InvalidSignature:
        return False
    return True


def check_entry(pe: PeImage, blob: bytes, certs: list) -> tuple[bool | None, str]:
    """(True, "matches the image") when the PKCS#7 `blob` (a certificate-table entry's, with `certs` its
    certificates) is a signature of `pe`; (False, why) when it is not; (None, why) when it cannot be told."""
    try:
        top = _Tlv(blob, 0, len(blob))
        oid, wrapped = top.children(_OID, _CTX0)[:2]
        if not _oid_is(oid, ac.OID_SIGNED_DATA):
            raise _Unreadable("not a PKCS#7 SignedData")
        parts = wrapped.children(_SEQ)[0].children(_INT, _SET, _SEQ)
        kind, content = parts[2].children(_OID, _CTX0)[:2]
        if not _oid_is(kind, ac.OID_SPC_INDIRECT_DATA):
            raise _Unreadable("the signed content is not Authenticode's SpcIndirectDataContent")
        indirect = content.children(_SEQ)[0]
        digest_info = indirect.children(_SEQ, _SEQ)[1]
        alg, signed_digest = digest_info.children(_SEQ, _OCTETS)[:2]
        image_hash = _hash_name(alg)
        infos = parts[-1]
        if infos.tag != _SET or not infos.children():
            raise _Unreadable("no SignerInfo")
        signer = infos.children()[0].children(_INT)
        rest = signer[3:]
        attrs = rest[0] if rest and rest[0].tag == _CTX0 else None
        if len(rest) < (3 if attrs is not None else 2):
            raise _Unreadable("a SignerInfo too short")
        sid, digest_alg = signer[1], signer[2]
        signature = rest[2] if attrs is not None else rest[1]
        if signature.tag != _OCTETS:
            raise _Unreadable("the SignerInfo's signature is not an OCTET STRING")
        hash_name = _hash_name(digest_alg)
        if ac.authenticode_digest(pe, image_hash) != signed_digest.content:
            return False, (f"does not match the image: its {image_hash.upper()} Authenticode hash is not the one "
                           "signed (the image, or the signature, changed after signing)")
        signed = indirect.content
        if attrs is not None:
            message_digest = None
            for attr in attrs.children():
                attr_oid, values = attr.children(_OID, _SET)[:2]
                if _oid_is(attr_oid, ac.OID_MESSAGE_DIGEST):
                    message_digest = values.children(_OCTETS)[0].content
            if message_digest != hashlib.new(hash_name, signed).digest():
                return False, ("does not match the image: the signed attributes' messageDigest is not the signed "
                               "content's")
            signed = bytes([_SET]) + attrs.whole[1:]  # what was signed: the attributes as a SET, not [0]
        cert = _signer_cert(certs, sid)
        if cert is None:
            return None, "not verified: the signer's certificate is not in the signature"
        if not _verify_signature(cert, signature.content, signed, hash_name):
            return False, "does not match the image: the signature does not verify with the signer's certificate"
        return True, "matches the image"
    except _Unreadable as exc:
        return None, f"not verified: {exc}"
