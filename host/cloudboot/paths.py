"""Where things live: the source tree, the build directory and the download cache."""

from __future__ import annotations

import os
from pathlib import Path

#: The repository root (host/cloudboot/paths.py -> ../../).
ROOT = Path(__file__).resolve().parents[2]

FIRMWARE_SRC = ROOT / "firmware"
PORT_DIR = FIRMWARE_SRC / "uefi_port"
MODULES_DIR = FIRMWARE_SRC / "modules"


def build_dir() -> Path:
    """Build outputs (`build/` in the tree unless CLOUDBOOT_BUILD says otherwise)."""
    return Path(os.environ.get("CLOUDBOOT_BUILD", ROOT / "build"))


def cache_dir() -> Path:
    """Downloads that survive `make clean` and fresh clones (sources, debs, firmware)."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cloud-boot"
    path = Path(os.environ.get("CLOUDBOOT_CACHE", default))
    path.mkdir(parents=True, exist_ok=True)
    return path
