"""`sign` refuses what `inspect` refuses (a section past the end of the file, SizeOfHeaders outside the file), a
key that does not match the certificate and an encrypted key; `uki` refuses a stub without code (no sections, an
entry point outside them) and header values that break the layout (absurd SizeOfHeaders, alignments, addresses
past 4 GiB): each with one line and no output written."""

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


def _stub_cases(app: Path) -> dict[str, tuple[bytes, str]]:
    """Stubs `uki` must refuse, each with what its line says."""
    data = app.read_bytes()
    opt, table = _headers(data)
    pe = struct.unpack_from("<I", data, 0x3C)[0]
    count = struct.unpack_from("<H", data, pe + 6)[0]

    def patched(at: int, fmt: str, value: int) -> bytes:
        out = bytearray(data)
        struct.pack_into(fmt, out, at, value)
        return bytes(out)

    return {
        "no-sections": (patched(pe + 6, "<H", 0), "the stub has no sections (no code for the firmware to run)"),
        "entry-outside": (patched(opt + 16, "<I", 0x900000), "entry point 0x900000 lies in none of its sections"),
        "headers-zero": (patched(opt + 60, "<I", 0), "SizeOfHeaders 0x0 is not between"),
        "headers-max": (patched(opt + 60, "<I", 0xFFFFFFFF), "SizeOfHeaders 0xffffffff is not between"),
        "file-alignment-2g": (patched(opt + 36, "<I", 0x80000000), "invalid alignment (file 0x80000000"),
        "file-alignment-3": (patched(opt + 36, "<I", 3), "each must be a power of two"),
        "section-alignment-2g": (patched(opt + 32, "<I", 0x80000000), "no room below 4 GiB for section .osrel"),
        "last-section-at-4g": (patched(table + 40 * (count - 1) + 12, "<I", 0xFFFFF000),
                               "no room below 4 GiB for section .osrel"),
    }


@pytest.mark.parametrize("case", ["no-sections", "entry-outside", "headers-zero", "headers-max", "file-alignment-2g",
                                  "file-alignment-3", "section-alignment-2g", "last-section-at-4g"])
def test_uki_refuses_a_stub_without_code_or_with_absurd_headers(case: str, app: Path, tmp_path: Path) -> None:
    stub, want = _stub_cases(app)[case]
    path = tmp_path / f"{case}.efi"
    path.write_bytes(stub)
    refused(cli("uki", "--stub", str(path), "--linux", str(app), "-o", str(tmp_path / "u.efi")), str(path), want)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]
    ok(cli("uki", "--stub", str(app), "--linux", str(app), "-o", str(tmp_path / "u.efi")))


def test_sign_of_a_4_gib_image_and_genkey_of_an_impossible_name(app: Path, keys: tuple[Path, Path, Path],
                                                                tmp_path: Path) -> None:
    """A 4 GiB image was read whole and then a struct.error (the certificate table's 32-bit offset); a common name
    X.509 cannot hold was cryptography's ValueError. Each is one line now, nothing written."""
    import resource

    key, cert, _ = keys
    big = tmp_path / "big.efi"
    with open(big, "wb") as f:
        f.write(app.read_bytes())
        f.truncate(4 << 30)
    refused(cli("sign", str(big), "--key", str(key), "--cert", str(cert), "-o", str(tmp_path / "s.efi"),
                limits={resource.RLIMIT_DATA: 512 << 20}), f"image {big}: 4294967296 bytes, more than the")
    for cn, length in (("", 0), ("x" * 65, 65), ("x" * 5000, 5000)):
        refused(cli("genkey", "-d", str(tmp_path), "--cn", cn), "--cn: a certificate's common name holds 1 to 64 "
                f"characters; this one has {length}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.efi"]
    ok(cli("genkey", "-d", str(tmp_path), "--cn", "x" * 64))
