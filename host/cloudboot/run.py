"""Running external programs: echoed before they run (`+ cmd args`), failures as CloudBootError."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from collections.abc import Container, Mapping, Sequence
from pathlib import Path

import arches
from cloudboot.errors import CloudBootError, MissingTool

#: Which Debian package provides a tool we call, for the "install X" message.
PACKAGE_OF = {
    "apt-get": "apt",
    "cryptsetup": "cryptsetup-bin",
    "dpkg-source": "dpkg-dev",
    "dpkg-deb": "dpkg",
    "make": "make",
    "mkfs.vfat": "dosfstools",
    "mcopy": "mtools",
    "mmd": "mtools",
    "xorriso": "xorriso",
    "qemu-img": "qemu-utils",
    **{a.qemu: a.qemu_package for a in arches.ARCHES},
    "quilt": "quilt",
    "sfdisk": "fdisk",
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
    input: bytes | None = None,  # noqa: A002 - subprocess's name for it
    ok: Container[int] | None = (0,),
) -> subprocess.CompletedProcess:
    """Run `cmd`, echoing it; raise CloudBootError with the tail of its output if its status is not in `ok`
    (None: any status, the caller reads `.returncode`).

    `quiet` keeps stdout and stderr off the terminal (shown only if it fails); `capture` keeps stdout as bytes
    in `.stdout` and stderr for the failure message; `input` is fed to stdin."""
    cmd = [str(c) for c in cmd]
    echo(cmd)
    if "/" not in cmd[0]:
        which(cmd[0])
    out = subprocess.PIPE if (quiet or capture) else None
    err = subprocess.PIPE if capture else subprocess.STDOUT if quiet else None
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=out, stderr=err, input=input)
    if ok is not None and proc.returncode not in ok:
        output = (proc.stderr if capture else proc.stdout) or b""
        tail = "\n".join(output.decode(errors="replace").splitlines()[-30:])
        raise CloudBootError(f"command failed with status {proc.returncode}: {shlex.join(cmd)}"
                             + (f"\n{tail}" if tail else ""))
    return proc
