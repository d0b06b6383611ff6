"""`inspect` says whether an Authenticode signature matches its image, and agrees with sbverify (the oracle) on
images signed by us and by sbsign, untouched and tampered in each part a signature binds: a section, the headers,
the digest the signature carries, the signed attributes' messageDigest, the RSA signature itself. The checksum
field, which Authenticode leaves out, changes nothing. A mangled PKCS#7 blob is a verdict, never an exception."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloudboot.fwbuild.hello import build_hello
from cloudboot.image.authenticode import authenticode_digest
from cloudboot.image.pe import PeImage
from tests.unit.hostile import cli, ok

pytestmark = pytest.mark.skipif(not shutil.which("sbverify"), reason="sbverify (sbsigntool) missing")

MESSAGE_DIGEST_OID = bytes.fromhex("06092a864886f70d010904")  # 1.2.840.113549.1.9.4


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """{"ours": ..., "sbsign": ...}: the same EFI app signed by `cloud-boot sign` and by sbsign; and the cert."""
    d = tmp_path_factory.mktemp("signed")
    app = build_hello("x86_64", d)
    ok(cli("genkey", "-d", str(d)))
    ok(cli("sign", str(app), "--key", str(d / "db.key"), "--cert", str(d / "db.crt"), "-o", str(d / "ours.efi")))
    subprocess.run(["sbsign", "--key", str(d / "db.key"), "--cert", str(d / "db.crt"), "--output",
                    str(d / "sbsign.efi"), str(app)], check=True, capture_output=True)
    return {"ours": d / "ours.efi", "sbsign": d / "sbsign.efi", "cert": d / "db.crt"}


def _table(data: bytes) -> tuple[int, int]:
    """(offset of the first PKCS#7 blob, its length)."""
    opt = struct.unpack_from("<I", data, 0x3C)[0] + 24
    table = struct.unpack_from("<I", data, opt + 112 + 32)[0]
    return table + 8, struct.unpack_from("<I", data, table)[0] - 8


def _tampered(data: bytes) -> dict[str, bytes]:
    """One bit flipped in each part a signature binds (and in the checksum, which it does not)."""
    pe = PeImage(data, "x")
    blob, length = _table(data)
    digest_at = data.index(authenticode_digest(pe), blob)  # the digest SpcIndirectDataContent carries
    md_at = data.index(MESSAGE_DIGEST_OID, blob) + len(MESSAGE_DIGEST_OID) + 4  # SET, OCTET STRING headers

    def flip(at: int) -> bytes:
        out = bytearray(data)
        out[at] ^= 0x01
        return bytes(out)

    return {"section": flip(pe.sections()[1].raw_offset + 16), "headers": flip(0x50),
            "checksum": flip(pe.opt + 64), "signed-digest": flip(digest_at + 3), "message-digest": flip(md_at + 5),
            "rsa-signature": flip(blob + length - 10)}


@pytest.mark.parametrize("signer", ["ours", "sbsign"])
def test_inspect_agrees_with_sbverify_on_tampered_signatures(signer: str, signed: dict[str, Path],
                                                             tmp_path: Path) -> None:
    original = signed[signer].read_bytes()
    cases = {"untouched": original, **_tampered(original)}
    for name, data in cases.items():
        path = tmp_path / f"{name}.efi"
        path.write_bytes(data)
        oracle = subprocess.run(["sbverify", "--cert", str(signed["cert"]), str(path)], capture_output=True,
                                text=True)
        verified = oracle.returncode == 0
        assert verified == (name in ("untouched", "checksum")), (name, oracle.stdout + oracle.stderr)
        head, line = ok(cli("inspect", str(path))).splitlines()[:2]
        if verified:
            assert head.endswith("signed (the signature matches the image; its signer is not checked against any "
                                 "db)"), (name, head)
            assert line == "  signature 1 (type 0x0002): matches the image", (name, line)
        else:
            assert head.endswith("signed, but signature 1 does not match the image"), (name, head)
            assert line.startswith("  signature 1 (type 0x0002): does not match the image: "), (name, line)
        info = json.loads(ok(cli("inspect", str(path), "--json")))
        assert info["signed"] is True and info["signatures"][0]["matches"] is verified, name


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_mangled_signature_is_a_verdict_never_an_exception(signed: dict[str, Path], data) -> None:
    from cryptography.hazmat.primitives.serialization import pkcs7

    from cloudboot.image.authenticode_verify import check_entry

    image = signed["ours"].read_bytes()
    at, length = _table(image)
    blob = bytearray(image[at:at + length])
    certs = pkcs7.load_der_pkcs7_certificates(bytes(blob))
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(blob) - 1))
        blob[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(blob)))
    matches, why = check_entry(PeImage(image, "x"), bytes(blob[:cut]), certs)
    assert matches in (True, False, None) and isinstance(why, str) and why


def test_a_signer_info_cut_short_or_reordered_is_a_verdict(signed: dict[str, Path]) -> None:
    """SignerInfos with elements missing from the end (the signature gone, the algorithms gone...) are rebuilt as
    valid DER around them: each is "not verified", never an IndexError."""
    from cryptography.hazmat.primitives.serialization import pkcs7

    from cloudboot.image.authenticode import _seq, _set, _tlv
    from cloudboot.image.authenticode_verify import _Tlv, check_entry

    image = signed["ours"].read_bytes()
    at, length = _table(image)
    blob = image[at:at + length]
    certs = pkcs7.load_der_pkcs7_certificates(blob)
    oid, wrapped = _Tlv(blob, 0, len(blob)).children()[:2]
    parts = wrapped.children()[0].children()
    signer = parts[-1].children()[0].children()
    pe = PeImage(image, "x")
    assert check_entry(pe, blob, certs) == (True, "matches the image")
    for keep in (signer[:k] for k in range(len(signer))):
        rebuilt = _seq(oid.whole, _tlv(0xA0, _seq(*(p.whole for p in parts[:-1]),
                                                  _set(_seq(*(e.whole for e in keep))))))
        matches, why = check_entry(pe, rebuilt, certs)
        assert matches is None and why.startswith("not verified: "), (len(keep), why)
