"""Authenticode signing, verified by sbverify (sbsigntool) as the oracle, tampering detected."""

from __future__ import annotations

import datetime
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from cloudboot.fwbuild.hello import build_hello


def _keypair(tmp_path: Path, key) -> tuple[Path, Path]:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cloud-boot test db")])
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(0x5EC0B007).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=3650))
            .sign(key, hashes.SHA256()))
    k, c = tmp_path / "db.key", tmp_path / "db.crt"
    k.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return k, c


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cloudboot", *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_hello("aarch64", tmp_path_factory.mktemp("app"))


def test_signature_verifies_with_sbverify_and_detects_tampering(tmp_path: Path, app: Path) -> None:
    key, cert = _keypair(tmp_path, rsa.generate_private_key(public_exponent=65537, key_size=2048))
    out = tmp_path / "signed.efi"
    proc = _cli("sign", str(app), "--key", str(key), "--cert", str(cert), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    ok = subprocess.run(["sbverify", "--cert", str(cert), str(out)], capture_output=True, text=True)
    assert ok.returncode == 0 and "Signature verification OK" in ok.stdout + ok.stderr
    data = bytearray(out.read_bytes())
    data[0x1000 + 16] ^= 0xFF  # a byte of the first section
    (tmp_path / "tampered.efi").write_bytes(bytes(data))
    bad = subprocess.run(["sbverify", "--cert", str(cert), str(tmp_path / "tampered.efi")], capture_output=True)
    assert bad.returncode != 0
    assert '"signed": true' in _cli("inspect", str(out), "--json").stdout
    again = _cli("sign", str(out), "--key", str(key), "--cert", str(cert), "-o", str(tmp_path / "twice.efi"))
    assert again.returncode == 1 and "already signed" in again.stderr
    stub = _cli("uki", "--stub", str(out), "--linux", str(app), "-o", str(tmp_path / "uki.efi"))
    assert stub.returncode == 1 and "already signed" in stub.stderr


def test_non_rsa_key_and_garbage_refused(tmp_path: Path, app: Path) -> None:
    key, cert = _keypair(tmp_path, ec.generate_private_key(ec.SECP256R1()))
    proc = _cli("sign", str(app), "--key", str(key), "--cert", str(cert), "-o", str(tmp_path / "o.efi"))
    assert proc.returncode == 1 and "only RSA signing keys" in proc.stderr
    (tmp_path / "junk.pem").write_text("junk")
    proc = _cli("sign", str(app), "--key", str(tmp_path / "junk.pem"), "--cert", str(cert), "-o",
                str(tmp_path / "o.efi"))
    assert proc.returncode == 1 and "cannot load the signing key" in proc.stderr
    assert not (tmp_path / "o.efi").exists()


def test_genkey_key_is_private_from_creation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """genkey's db.key is created 0600 and never has group/other bits, even under umask 0 (no chmod after the
    fact); db.crt is 0644; the pair signs."""
    import os
    import stat

    from cloudboot.cli import main

    created: list[tuple[str, int]] = []
    chmods: list[tuple[str, int]] = []
    real_open, real_chmod = os.open, os.chmod

    def spy_open(path, flags, mode=0o777, *a, **kw):
        if flags & os.O_CREAT:
            created.append((os.path.basename(os.fsdecode(path)), mode))
        return real_open(path, flags, mode, *a, **kw)

    def spy_chmod(path, mode, *a, **kw):
        chmods.append((os.path.basename(os.fsdecode(path)), mode))
        return real_chmod(path, mode, *a, **kw)

    monkeypatch.setattr(os, "open", spy_open)
    monkeypatch.setattr(os, "chmod", spy_chmod)
    old_umask = os.umask(0)
    try:
        assert main(["genkey", "-d", str(tmp_path), "--cn", "mode test"]) == 0
    finally:
        os.umask(old_umask)
        monkeypatch.undo()
    key_files = [(n, m) for n, m in created if n == "db.key" or n.startswith(".db.key.")]
    assert key_files and all(m & 0o077 == 0 for _, m in key_files), created
    assert all(m & 0o077 == 0 for n, m in chmods if "db.key" in n), chmods
    assert stat.S_IMODE((tmp_path / "db.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "db.crt").stat().st_mode) == 0o644
    key = serialization.load_pem_private_key((tmp_path / "db.key").read_bytes(), None)
    cert = x509.load_pem_x509_certificate((tmp_path / "db.crt").read_bytes())
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    assert "CN=mode test" in capsys.readouterr().out
