"""The one output discipline of every verb, and how verbs read their input files.

Outputs: a regular file written whole or not at all, next to its final name: a temporary file created there
without following links (O_CREAT|O_EXCL|O_NOFOLLOW, relative to the directory opened once), written, fsync'd,
then renamed over the name. Nothing but a regular file is ever replaced: a directory, a symbolic link, a FIFO,
a socket or a device node at the output path is refused with one line (a block device with how to write an
image to it: `dd`); a file that exists is replaced only when the verb is told so (`force`; keys and pulled
artifacts are not replaced without `--force`, built images are). Inputs: regular files only (a FIFO would block,
a device is not an input file), at most `max_size` bytes.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from cloudboot.errors import CloudBootError

#: Inputs read into memory whole are refused above this (give a smaller file; `inspect` maps its file instead:
#: map_input).
READ_MAX = 4 << 30
_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def kind_of(mode: int) -> str:
    """'a directory', 'a FIFO', ... for a non-regular st_mode ('a regular file' otherwise)."""
    return next((what for test, what in _KINDS if test(mode)), "a regular file")


def open_input(path: Path | str, what: str, *, devices: bool = False) -> int:
    """A read-only descriptor of `path` when it is a regular file (or, with `devices`, a block device); a
    CloudBootError naming `what` otherwise. Opened non-blocking, so a FIFO is refused instead of waited on."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise CloudBootError(f"{what} {path}: {exc.strerror or exc}") from None
    mode = os.fstat(fd).st_mode
    if stat.S_ISREG(mode) or (devices and stat.S_ISBLK(mode)):
        os.set_blocking(fd, True)
        return fd
    os.close(fd)
    raise CloudBootError(f"{what} {path}: is {kind_of(mode)}, not a regular file")


def read_input(path: Path | str, what: str, max_size: int = READ_MAX) -> bytes:
    """The bytes of the regular file `path`; a CloudBootError saying which input (`what`, e.g. "--stub") and why
    otherwise (missing, unreadable, a directory, FIFO or device, larger than `max_size`)."""
    fd = open_input(path, what)
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(fd).st_size
        if size > max_size:
            raise CloudBootError(f"{what} {path}: {size} bytes, more than the {max_size} this input may have")
        try:
            data = f.read(size + 1)  # what fstat says, and one byte to see a file that grew meanwhile
        except OSError as exc:
            raise CloudBootError(f"{what} {path}: {exc.strerror or exc}") from None
    if len(data) > max_size:
        raise CloudBootError(f"{what} {path}: more than the {max_size} bytes this input may have")
    return data


def map_input(path: Path | str, what: str) -> mmap.mmap | bytes:
    """The regular file `path` mapped read-only (b"" when empty): what `inspect` reads, so a 4 GiB file costs
    address space, not memory; a CloudBootError as read_input's otherwise."""
    fd = open_input(path, what)
    try:
        if os.fstat(fd).st_size == 0:
            return b""
        return mmap.mmap(fd, 0, prot=mmap.PROT_READ)
    except OSError as exc:
        raise CloudBootError(f"{what} {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def refusal(out: Path, mode: int) -> str:
    kind = kind_of(mode)
    if stat.S_ISBLK(mode):
        return (f"{out}: is a block device: cloud-boot writes image files, not devices; write the image to a "
                f"file, then copy it onto the device, e.g. `dd if=boot.iso of={out} bs=4M conv=fsync`")
    if stat.S_ISLNK(mode):
        return f"{out}: is a symbolic link: not replacing it (name the file it points to, or remove the link)"
    return f"{out}: is {kind}: not replacing it with a file"


def check_output(out: Path | str, force: bool = True, what: str = "") -> Path:
    """Refuse early what write_atomic would refuse: a missing directory, anything but a regular file at `out`, and
    an existing file unless `force`. Returns `out` as a Path. (write_atomic checks again before the rename.)"""
    out = Path(out)
    if not out.parent.is_dir():
        raise CloudBootError(f"{out}: the directory {out.parent} does not exist")
    try:
        mode = os.lstat(out).st_mode
    except FileNotFoundError:
        return out
    except OSError as exc:
        raise CloudBootError(f"{out}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        raise CloudBootError(refusal(out, mode))
    if not force:
        raise CloudBootError(f"{out}: exists{' (' + what + ')' if what else ''}; not replacing it without --force")
    return out


@contextlib.contextmanager
def atomic_output(out: Path | str, mode: int = 0o644, force: bool = True) -> Iterator[BinaryIO]:
    """A file to write `out` through (see the module docstring): renamed into place when the block ends without
    an exception, removed otherwise. Created 0600 and given `mode` only before the rename, so a private output is
    never readable by others, not even while it is written. Every failure is one CloudBootError naming `out`."""
    out = check_output(out, force)
    try:
        dirfd = os.open(out.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise CloudBootError(f"{out}: cannot write into {out.parent}: {exc.strerror or exc}") from None
    tmp = None
    try:
        for _ in range(16):
            name = f".{out.name[:100]}.{secrets.token_hex(4)}.tmp"
            try:
                fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                             dir_fd=dirfd)
            except FileExistsError:
                continue
            tmp = name
            break
        else:
            raise CloudBootError(f"{out}: cannot create a temporary file next to it")
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        _place(dirfd, tmp, out, force)
        tmp = None
    except OSError as exc:
        if exc.filename is not None and tmp is not None and exc.filename != tmp:
            raise  # about another file (an input the caller read while writing): the CLI names that file
        raise CloudBootError(f"{out}: cannot write: {exc.strerror or exc}") from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dirfd)
        os.close(dirfd)


def _place(dirfd: int, tmp: str, out: Path, force: bool) -> None:
    """Rename `tmp` to `out`'s name in the directory `dirfd`, checking again what is there now; without `force`
    never over an existing name (a hard link fails when the name exists; filesystems without hard links fall
    back to the check just made)."""
    try:
        mode = os.lstat(out.name, dir_fd=dirfd).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        raise CloudBootError(refusal(out, mode))
    if mode is not None and not force:
        raise CloudBootError(f"{out}: exists; not replacing it without --force")
    if force:
        os.rename(tmp, out.name, src_dir_fd=dirfd, dst_dir_fd=dirfd)
        return
    try:
        os.link(tmp, out.name, src_dir_fd=dirfd, dst_dir_fd=dirfd, follow_symlinks=False)
    except FileExistsError:
        raise CloudBootError(f"{out}: exists; not replacing it without --force") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        os.rename(tmp, out.name, src_dir_fd=dirfd, dst_dir_fd=dirfd)
        return
    os.unlink(tmp, dir_fd=dirfd)


def install(tmp: Path | str, out: Path | str, mode: int = 0o644, force: bool = True) -> None:
    """Rename a finished temporary file `tmp` (which the caller made in `out`'s directory, e.g. by a tool that
    writes to a path) over `out`, with the same checks as atomic_output; `tmp` is removed when refused."""
    out = Path(out)
    try:
        os.chmod(tmp, mode)
        dirfd = os.open(out.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            _place(dirfd, os.path.basename(tmp), out, force)
        finally:
            os.close(dirfd)
    except OSError as exc:
        raise CloudBootError(f"{out}: cannot write: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def write_atomic(out: Path | str, data: bytes, mode: int = 0o644, force: bool = True) -> None:
    """Write `data` as `out` through atomic_output (whole or not at all; never over anything but a regular file,
    and over an existing one only with `force`)."""
    with atomic_output(out, mode, force) as f:
        f.write(data)
