"""Signed UKIs: `cloud-boot sign` on a UKI, checked by sbverify; our Authenticode hash equals the one sbsign
embeds; `inspect` lists signatures as `sbverify --list` does."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from cloudboot.fwbuild.hello import build_hello

SHA256_THEN_DIGEST = bytes.fromhex("0609608648016503040201050004" "20")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cloudboot", *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def uki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    d = tmp_path_factory.mktemp("signuki")
    stub = build_hello("x86_64", d)
    (d / "vmlinuz").write_bytes(bytes(range(251)) * 997)
    (d / "initrd").write_bytes(b"070701" + bytes(3333))
    out = d / "uki.efi"
    proc = _cli("uki", "--stub", str(stub), "--linux", str(d / "vmlinuz"), "--initrd", str(d / "initrd"),
                "--cmdline", "console=ttyS0", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    proc = _cli("genkey", "-d", str(d), "--cn", "cloud-boot uki test")
    assert proc.returncode == 0, proc.stderr
    return out, d / "db.key", d / "db.crt"


def _embedded_digest(signed: bytes) -> bytes:
    opt = struct.unpack_from("<I", signed, 0x3C)[0] + 24
    offset, size = struct.unpack_from("<II", signed, opt + 112 + 4 * 8)
    blob = signed[offset:offset + size]
    at = blob.index(SHA256_THEN_DIGEST) + len(SHA256_THEN_DIGEST)
    return blob[at:at + 32]


def test_signed_uki_verifies_and_hash_matches_sbsign(tmp_path: Path, uki: tuple[Path, Path, Path]) -> None:
    from cloudboot.image.authenticode import authenticode_digest
    from cloudboot.image.pe import PeImage

    image, key, cert = uki
    ours, theirs = tmp_path / "ours.efi", tmp_path / "sbsign.efi"
    proc = _cli("sign", str(image), "--key", str(key), "--cert", str(cert), "-o", str(ours))
    assert proc.returncode == 0, proc.stderr
    ok = subprocess.run(["sbverify", "--cert", str(cert), str(ours)], capture_output=True, text=True)
    assert ok.returncode == 0 and "Signature verification OK" in ok.stdout + ok.stderr
    subprocess.run(["sbsign", "--key", str(key), "--cert", str(cert), "--output", str(theirs), str(image)],
                   check=True, capture_output=True)
    data = image.read_bytes()
    expected = authenticode_digest(PeImage(data + bytes(-len(data) % 8), str(image)))
    assert _embedded_digest(theirs.read_bytes()) == expected == _embedded_digest(ours.read_bytes())
    # The same listing as sbverify --list, from both signers' output.
    for signed in (ours, theirs):
        listing = subprocess.run(["sbverify", "--list", str(signed)], capture_output=True, text=True).stdout
        subjects = [line.split("subject:", 1)[1].strip() for line in listing.splitlines()
                    if "subject:" in line]
        info = json.loads(_cli("inspect", str(signed), "--json").stdout)
        assert info["signed"] is True
        assert ["/" + c["subject"] for s in info["signatures"] for c in s["certificates"]] == subjects \
            == ["/CN=cloud-boot uki test"]
    # Deterministic: the same key, image and certificate give the same bytes.
    again = tmp_path / "again.efi"
    assert _cli("sign", str(image), "--key", str(key), "--cert", str(cert), "-o", str(again)).returncode == 0
    assert again.read_bytes() == ours.read_bytes()


def test_tampered_uki_fails_and_corrupt_table_is_a_clean_error(tmp_path: Path,
                                                               uki: tuple[Path, Path, Path]) -> None:
    image, key, cert = uki
    signed = tmp_path / "signed.efi"
    assert _cli("sign", str(image), "--key", str(key), "--cert", str(cert), "-o", str(signed)).returncode == 0
    info = json.loads(_cli("inspect", str(signed), "--json").stdout)
    linux = next(s for s in info["sections"] if s["name"] == ".linux")
    data = bytearray(signed.read_bytes())
    data[linux["file_offset"] + 1000] ^= 0x01  # one bit of the kernel
    (tmp_path / "tampered.efi").write_bytes(bytes(data))
    bad = subprocess.run(["sbverify", "--cert", str(cert), str(tmp_path / "tampered.efi")],
                         capture_output=True)
    assert bad.returncode != 0
    opt = struct.unpack_from("<I", data, 0x3C)[0] + 24
    offset = struct.unpack_from("<I", data, opt + 112 + 4 * 8)[0]
    data[offset + 8:offset + 16] = b"\xff" * 8  # garbage where the PKCS#7 DER starts
    (tmp_path / "corrupt.efi").write_bytes(bytes(data))
    proc = _cli("inspect", str(tmp_path / "corrupt.efi"))
    assert proc.returncode == 1 and "is not PKCS#7" in proc.stderr and "Traceback" not in proc.stderr
