"""`sign` refuses what `inspect` refuses (a section past the end of the file, SizeOfHeaders outside the file), a
key that does not match the certificate and an encrypted key, each with one line and no output written."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from cloudboot.fwbuild.hello import build_hello
from tests.unit.hostile import cli, ok, refused


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_hello("aarch64", tmp_path_factory.mktemp("app"))


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(db.key, db.crt, another.crt)."""
    one, two = tmp_path_factory.mktemp("k1"), tmp_path_factory.mktemp("k2")
    ok(cli("genkey", "-d", str(one), "--cn", "one"))
    ok(cli("genkey", "-d", str(two), "--cn", "two"))
    return one / "db.key", one / "db.crt", two / "db.crt"


def _headers(data: bytes) -> tuple[int, int]:
    """(optional header offset, section table offset)."""
    pe = struct.unpack_from("<I", data, 0x3C)[0]
    return pe + 24, pe + 24 + struct.unpack_from("<H", data, pe + 20)[0]


def _broken(app: Path) -> dict[str, bytes]:
    data = app.read_bytes()
    opt, table = _headers(data)
    past = bytearray(data)
    struct.pack_into("<I", past, table + 16, len(data))  # section 0's SizeOfRawData: runs past the end
    headers = bytearray(data)
    struct.pack_into("<I", headers, opt + 60, 0xFFFFF000)  # SizeOfHeaders far beyond the file
    return {"section-past-end": bytes(past), "size-of-headers": bytes(headers)}


@pytest.mark.parametrize("case", ["section-past-end", "size-of-headers"])
def test_sign_refuses_what_inspect_refuses(case: str, app: Path, keys: tuple[Path, Path, Path],
                                           tmp_path: Path) -> None:
    key, cert, _ = keys
    image = tmp_path / f"{case}.efi"
    image.write_bytes(_broken(app)[case])
    why = refused(cli("inspect", str(image))).split(": ", 2)[2]
    refused(cli("sign", str(image), "--key", str(key), "--cert", str(cert), "-o", str(tmp_path / "s.efi")), why)
    refused(cli("uki", "--stub", str(image), "--linux", str(app), "-o", str(tmp_path / "u.efi")), why)
    assert sorted(p.name for p in tmp_path.iterdir()) == [image.name]


def test_a_key_that_is_not_the_certificates_or_is_encrypted(app: Path, keys: tuple[Path, Path, Path],
                                                            tmp_path: Path) -> None:
    key, cert, other = keys
    out = tmp_path / "s.efi"
    refused(cli("sign", str(app), "--key", str(key), "--cert", str(other), "-o", str(out)),
            "--key does not match --cert")
    locked = tmp_path / "locked.key"
    pem = serialization.load_pem_private_key(key.read_bytes(), password=None)
    locked.write_bytes(pem.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.BestAvailableEncryption(b"secret")))
    refused(cli("sign", str(app), "--key", str(locked), "--cert", str(cert), "-o", str(out)), "encrypted")
    assert not out.exists()
    ok(cli("sign", str(app), "--key", str(key), "--cert", str(cert), "-o", str(out)))
