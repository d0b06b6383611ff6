"""`cloud-boot firmware`'s netboot sections: `.cacerts` (DER roots from PEM files) and `.cosign` (a P-256
cosign.pub), appended to a PE image; bad inputs are one CloudBootError naming the file."""

from __future__ import annotations

import ssl

import pytest

from cloudboot.errors import CloudBootError
from cloudboot.fwbuild.firmware import add_sections, ca_section, cosign_key_section
from cloudboot.fwbuild.hello import build_hello
from cloudboot.image.pe import PeImage
from tests.testca import make_ca


def test_sections_are_appended_and_cacerts_replaced(tmp_path) -> None:
    ca, cert, _ = make_ca(tmp_path)
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pub = tmp_path / "cosign.pub"
    pub.write_bytes(ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    roots = ca_section([ca, cert], debian=False)
    assert roots == ssl.PEM_cert_to_DER_cert(ca.read_text()) + ssl.PEM_cert_to_DER_cert(cert.read_text())
    efi = build_hello("x86_64", tmp_path)
    out = add_sections(efi, roots, cosign_key_section(pub), out=tmp_path / "fw.efi")
    pe = PeImage(out.read_bytes(), str(out))
    names = [s.name for s in pe.sections()]
    assert names[-2:] == [".cacerts", ".cosign"]
    again = add_sections(out, ca_section([ca], debian=False), out=tmp_path / "fw2.efi")
    assert [s.name for s in PeImage(again.read_bytes(), "fw2").sections()].count(".cacerts") == 1


def test_bad_inputs_name_the_file(tmp_path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    with pytest.raises(CloudBootError, match=r"--ca-file .*bad.pem: no PEM CERTIFICATE block"):
        ca_section([bad], debian=False)
    with pytest.raises(CloudBootError, match=r"--cosign-key .*bad.pem: no PEM PUBLIC KEY block"):
        cosign_key_section(bad)
    with pytest.raises(CloudBootError, match=r"--ca-file .*missing.pem"):
        ca_section([tmp_path / "missing.pem"], debian=False)
