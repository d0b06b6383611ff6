"""Authenticode signing of PE32+ images (what sbsign does), written from the Authenticode and CMS specs.

The signature is a PKCS#7 SignedData over an SpcIndirectDataContent that carries the image's SHA-256
Authenticode hash; it is appended as a WIN_CERTIFICATE and referenced by data directory 4.
"""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

from cloudboot.errors import CloudBootError
from cloudboot.image.output import check_output, write_atomic
from cloudboot.image.pe import DIR_SECURITY, PeImage, pe_checksum

OID_SHA256 = "2.16.840.1.101.3.4.2.1"
OID_RSA = "1.2.840.113549.1.1.1"
OID_SIGNED_DATA = "1.2.840.113549.1.7.2"
OID_CONTENT_TYPE = "1.2.840.113549.1.9.3"
OID_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
OID_SPC_INDIRECT_DATA = "1.3.6.1.4.1.311.2.1.4"
OID_SPC_PE_IMAGE_DATA = "1.3.6.1.4.1.311.2.1.15"
#: The largest image `sign` takes: the certificate table it appends must start below 4 GiB (a 32-bit file offset),
#: with room for the table itself.
SIGN_MAX = 0xFFFFFFFF - (64 << 10)
#: X.509's upper bound on a common name (ub-common-name).
CN_MAX = 64


# ---- a minimal DER encoder ----
def _len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _len(len(body)) + body


def _seq(*parts: bytes) -> bytes:
    return _tlv(0x30, b"".join(parts))


def _set(*parts: bytes) -> bytes:
    return _tlv(0x31, b"".join(sorted(parts)))  # DER: SET OF in sorted order


def _oid(dotted: str) -> bytes:
    nums = [int(x) for x in dotted.split(".")]
    body = bytearray([40 * nums[0] + nums[1]])
    for n in nums[2:]:
        chunk = [n & 0x7F]
        while n > 0x7F:
            n >>= 7
            chunk.append(0x80 | (n & 0x7F))
        body += bytes(reversed(chunk))
    return _tlv(0x06, bytes(body))


def _int(n: int) -> bytes:
    body = n.to_bytes(max(1, (n.bit_length() + 8) // 8), "big", signed=False)
    return _tlv(0x02, body)


def _alg(oid: str) -> bytes:
    return _seq(_oid(oid), b"\x05\x00")


def authenticode_digest(pe: PeImage, algorithm: str = "sha256") -> bytes:
    """The Authenticode hash (`algorithm`, a hashlib name): the image minus the checksum, the certificate-table
    entry and the certificate table itself."""
    data = memoryview(pe.data)  # no copies of a large (mapped) image's sections
    cksum, certdir = pe.opt + 64, pe.opt + 112 + 4 * 8
    table, table_size = pe.directory(DIR_SECURITY)
    h = hashlib.new(algorithm)
    h.update(data[:cksum])
    h.update(data[cksum + 4:certdir])
    h.update(data[certdir + 8:pe.size_of_headers])
    end = pe.size_of_headers
    for s in sorted((s for s in pe.sections() if s.raw_size), key=lambda s: s.raw_offset):
        h.update(data[s.raw_offset:s.raw_offset + s.raw_size])
        end = max(end, s.raw_offset + s.raw_size)
    if table_size and table >= end:  # trailing data up to the table, and any after it
        h.update(data[end:table])
        h.update(data[table + table_size:])
    else:
        h.update(data[end:])
    return h.digest()


def sign(image: bytes, name: str, key_pem: bytes, cert_pem: bytes) -> bytes:
    """The image with an Authenticode signature by `key_pem` (RSA) certified by `cert_pem`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:  # cryptography: "Password was not given but private key is encrypted"
        raise CloudBootError("--key: the private key is encrypted; give an unencrypted PEM key (e.g. `openssl rsa "
                             "-in db.key -out db-plain.key`)") from None
    except ValueError as exc:
        raise CloudBootError(f"--key: cannot load the signing key: {exc}") from None
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as exc:
        raise CloudBootError(f"--cert: cannot load the certificate: {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CloudBootError("only RSA signing keys are supported for Authenticode "
                             "(UEFI db keys are RSA-2048)")
    if key.public_key().public_numbers() != cert.public_key().public_numbers():
        raise CloudBootError("--key does not match --cert: the certificate is for another key (a signature "
                             "firmware could never verify)")
    # What inspect refuses is refused here too: a malformed image signed would still not boot.
    PeImage(image, name).check_sections()
    if len(image) > SIGN_MAX:
        raise CloudBootError(f"{name}: {len(image)} bytes: too large to sign (the signature must start below 4 GiB, "
                             "where a PE32+ image's 32-bit offsets reach)")
    padded = image + bytes(-len(image) % 8)  # the certificate table starts 8-byte aligned
    pe = PeImage(padded, name)
    if pe.signature_size():
        signatures(pe)  # a malformed table is its own error
        raise CloudBootError(f"{name}: already signed")
    digest = authenticode_digest(pe)

    obsolete = "<<<Obsolete>>>".encode("utf-16-be")
    pe_image_data = _seq(b"\x03\x01\x00", _tlv(0xA0, _tlv(0xA2, _tlv(0x80, obsolete))))
    indirect = _seq(_seq(_oid(OID_SPC_PE_IMAGE_DATA), pe_image_data),
                    _seq(_alg(OID_SHA256), _tlv(0x04, digest)))
    # The message digest covers the content octets of SpcIndirectDataContent (without its tag and length).
    content_octets = _strip_tl(indirect)
    attrs = [
        _seq(_oid(OID_CONTENT_TYPE), _set(_oid(OID_SPC_INDIRECT_DATA))),
        _seq(_oid(OID_MESSAGE_DIGEST), _set(_tlv(0x04, hashlib.sha256(content_octets).digest()))),
    ]
    signed_attrs = _set(*attrs)
    signature = key.sign(signed_attrs, padding.PKCS1v15(), hashes.SHA256())
    issuer = cert.issuer.public_bytes()
    signer = _seq(_int(1), _seq(issuer, _int(cert.serial_number)), _alg(OID_SHA256),
                  b"\xa0" + signed_attrs[1:],  # the same SET, tagged [0] IMPLICIT
                  _alg(OID_RSA), _tlv(0x04, signature))
    signed_data = _seq(_int(1), _set(_alg(OID_SHA256)),
                       _seq(_oid(OID_SPC_INDIRECT_DATA), _tlv(0xA0, indirect)),
                       _tlv(0xA0, cert.public_bytes(serialization.Encoding.DER)),
                       _set(signer))
    pkcs7 = _seq(_oid(OID_SIGNED_DATA), _tlv(0xA0, signed_data))
    cert_entry = struct.pack("<IHH", 8 + len(pkcs7), 0x0200, 0x0002) + pkcs7
    cert_entry += bytes(-len(cert_entry) % 8)
    out = bytearray(padded) + cert_entry
    struct.pack_into("<II", out, pe.opt + 112 + 4 * 8, len(padded), len(cert_entry))
    struct.pack_into("<I", out, pe.opt + 64, pe_checksum(out, pe.opt + 64))
    return bytes(out)


def _strip_tl(der: bytes) -> bytes:
    """The content octets of one DER TLV."""
    n = der[1]
    return der[2:] if n < 0x80 else der[2 + (n & 0x7F):]


def signatures(pe: PeImage, verify: bool = False) -> list[dict]:
    """The Authenticode certificate table's entries: type and the certificates each PKCS#7 blob carries
    (subject, issuer, serial), as `sbverify --list` shows them; with `verify`, also whether each signature matches
    the image ("matches": True, False or None when it cannot be told, and "check": the verdict in words, see
    authenticode_verify). Malformed tables are a CloudBootError."""
    from cryptography.hazmat.primitives.serialization import pkcs7

    from cloudboot.image.authenticode_verify import check_entry, der_element

    offset, size = pe.directory(4)  # for this directory the address is a file offset
    if not size:
        return []
    if offset + size > len(pe.data) or size < 8:
        raise CloudBootError(f"{pe.name}: certificate table [{offset:#x}, +{size:#x}) runs past the end "
                             f"of the file")
    out, pos, end = [], offset, offset + size
    while pos + 8 <= end:
        length, revision, kind = struct.unpack_from("<IHH", pe.data, pos)
        if length < 8 or pos + length > end:
            raise CloudBootError(f"{pe.name}: certificate entry at {pos:#x} has a bad length {length}")
        entry = {"revision": revision, "type": kind, "certificates": []}
        if verify:
            entry["matches"], entry["check"] = None, f"not verified: type {kind:#06x} is not a PKCS#7 signature"
        if kind == 0x0002:  # WIN_CERT_TYPE_PKCS_SIGNED_DATA
            try:
                blob = der_element(bytes(pe.data[pos + 8:pos + length]))
                certs = pkcs7.load_der_pkcs7_certificates(blob)
            except ValueError as exc:
                raise CloudBootError(f"{pe.name}: certificate entry at {pos:#x} is not PKCS#7: {exc}") \
                    from None
            entry["certificates"] = [{"subject": c.subject.rfc4514_string(),
                                      "issuer": c.issuer.rfc4514_string(),
                                      "serial": f"{c.serial_number:x}"} for c in certs]
            if verify:
                entry["matches"], entry["check"] = check_entry(pe, blob, certs)
        out.append(entry)
        pos += (length + 7) // 8 * 8
    return out



def self_signed(common_name: str, directory: Path, force: bool = False) -> tuple[Path, Path]:
    """A new RSA-2048 key and a self-signed CA certificate (ten years) as `directory`/db.key and db.crt, for test
    Secure Boot databases. The key file is created mode 0600: it is never readable by others, not even while
    it is being written. Existing files are replaced only with `force` (a key lost is a database to redo)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    if not 1 <= len(common_name) <= CN_MAX:
        raise CloudBootError(f"--cn: a certificate's common name holds 1 to {CN_MAX} characters; this one has "
                             f"{len(common_name)}")
    if not directory.is_dir():
        raise CloudBootError(f"{directory}: not a directory")
    key_path, cert_path = directory / "db.key", directory / "db.crt"
    check_output(key_path, force, "a signing key")
    check_output(cert_path, force, "a certificate")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    write_atomic(key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()), mode=0o600, force=force)
    write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), force=force)
    return key_path, cert_path
