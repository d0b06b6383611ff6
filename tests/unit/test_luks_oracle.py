"""Our LUKS unlock against cryptsetup's own (`cryptsetup open --test-passphrase`, which needs no
device-mapper), on every fixture variant: the same passphrases open it, the same keyslot, and the same
wrong ones fail."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "portable"))
import fstree  # noqa: E402
from test_luks import PASSPHRASE, SECOND, VARIANTS  # noqa: E402

from diskfs import luks  # noqa: E402
from diskfs.errors import Locked  # noqa: E402


def _cryptsetup_opens(image: str, passphrase: bytes, slot: int | None = None) -> bool:
    cmd = ["cryptsetup", "open", "--test-passphrase", "--key-file", "-", image]
    if slot is not None:
        cmd[3:3] = ["--key-slot", str(slot)]
    proc = subprocess.run(cmd, input=passphrase, capture_output=True)
    assert proc.returncode in (0, 2), proc.stderr  # 2: no key available with this passphrase
    return proc.returncode == 0


def _ours(image: str, passphrase: bytes) -> int | None:
    dev = fstree.dev(image)
    hdr = luks.parse(dev)
    luks.check(hdr, dev, luks.Limits())
    try:
        return luks.unlock(dev, hdr, passphrase)[1]
    except Locked:
        return None


@pytest.mark.parametrize("image", sorted(VARIANTS))
def test_unlock_agrees_with_cryptsetup(image: str) -> None:
    path = fstree.data(image)
    for passphrase in (PASSPHRASE, SECOND, b"wrong", PASSPHRASE + b"\n", PASSPHRASE[:-1]):
        slot = _ours(image, passphrase)
        assert (slot is not None) == _cryptsetup_opens(path, passphrase), (image, passphrase)
        if slot is not None:
            assert _cryptsetup_opens(path, passphrase, slot), (image, passphrase, slot)
    assert _ours(image, PASSPHRASE) == 0
    if image == "luks2-argon2id.img":
        assert _ours(image, SECOND) == 1
