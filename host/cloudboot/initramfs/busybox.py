"""A tiny initrd: Debian's busybox-static for an arch with a given /init script, as a newc cpio (our writer).
The tests' marker guests (harness.guests, harness.trial) and `cloud-boot demo`'s target use it."""

from __future__ import annotations

from pathlib import Path

from cloudboot.image.output import write_atomic
from cloudboot.initramfs import cpio, debian


def busybox_initrd(arch: str, init: str, out: Path, dirs: tuple[str, ...] = ("proc", "dev"),
                   console: bool = False) -> Path:
    """Debian's busybox-static for `arch` with `init` as /init and the empty directories `dirs` (with `console`,
    a /dev/console node: a shell on it gets a controlling terminal), written to `out`; made again only when
    the package or any of these changed."""
    archive = debian.Archive(arch)
    deb = archive.fetch(["busybox-static"])[0]
    key = "\n".join([deb.path.name, *dirs, str(console), init])
    stamp = out.with_suffix(".key")
    if out.exists() and stamp.exists() and stamp.read_text() == key:
        return out
    a = cpio.Archive()
    a.file("bin/busybox", archive.unpack(deb) / "usr/bin/busybox", 0o755)
    a.file("init", init.encode(), 0o755)
    for d in dirs:
        a.dir(d)
    if console:
        a.device("dev/console", "c", 5, 1, 0o600)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, a.to_bytes())
    stamp.write_text(key)
    return out
