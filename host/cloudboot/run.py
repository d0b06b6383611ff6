"""Running external programs: echoed before they run (`+ cmd args`), failures as CloudBootError."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from cloudboot.errors import CloudBootError, MissingTool

#: Which Debian package provides a tool we call, for the "install X" message.
PACKAGE_OF = {
    "apt-get": "apt",
    "dpkg-source": "dpkg-dev",
    "dpkg-deb": "dpkg",
    "make": "make",
    "mkfs.vfat": "dosfstools",
    "mcopy": "mtools",
    "mmd": "mtools",
    "xorriso": "xorriso",
    "qemu-img": "qemu-utils",
    "qemu-system-x86_64": "qemu-system-x86",
    "qemu-system-aarch64": "qemu-system-arm",
    "qemu-system-riscv64": "qemu-system-riscv",
    "qemu-system-loongarch64": "qemu-system-misc",
    "quilt": "quilt",
    "sfdisk": "fdisk",
    "virt-fw-vars": "python3-virt-firmware",
}


def which(tool: str, why: str = "") -> str:
    """Absolute path of `tool`, or MissingTool naming the Debian package that provides it."""
    found = shutil.which(tool)
    if not found:
        raise MissingTool(tool, PACKAGE_OF.get(tool, tool), why)
    return found


def echo(cmd: Sequence[str | Path]) -> None:
    """Print a command the way a shell would show it, before running it."""
    print("+ " + " ".join(shlex.quote(str(c)) for c in cmd), file=sys.stderr, flush=True)


def run(
    cmd: Sequence[str | Path],
    *,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    quiet: bool = False,
    capture: bool = False,
    input_text: str | None = None,
) -> subprocess.CompletedProcess:
    """Run `cmd`, echoing it; raise CloudBootError with the tail of its output if it fails.

    `capture` keeps stdout as bytes (in `.stdout`); `input_text` is fed to stdin."""
    cmd = [str(c) for c in cmd]
    echo(cmd)
    if "/" not in cmd[0]:
        which(cmd[0])
    out = subprocess.PIPE if (quiet or capture) else None
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT if quiet else None,
                          text=not capture, input=input_text.encode() if (capture and input_text) else input_text)
    if proc.returncode != 0:
        output = proc.stdout.decode(errors="replace") if isinstance(proc.stdout, bytes) else (proc.stdout or "")
        tail = "\n".join(output.splitlines()[-30:])
        raise CloudBootError(f"command failed with status {proc.returncode}: {shlex.join(cmd)}"
                             + (f"\n{tail}" if tail else ""))
    return proc
