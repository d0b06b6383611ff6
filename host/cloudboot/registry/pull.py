"""`pull`: an artifact's layers into a directory, each named by its title, verified on the way (digests always,
cosign as the policy says).

Layer titles are untrusted: each must be a plain file name (no `/`, not `.`/`..`, no control or invisible
characters, at most 255 bytes) and no two may be equal; otherwise nothing is downloaded. Every layer goes into
a private staging directory next to the output (created 0700, files created O_EXCL so nothing is opened through
a planted link) and is moved into place only when every layer verified: a new directory is renamed into place
whole; into an existing one each file is renamed in, and a name that exists there already is replaced only
with `force` (and never when it is not a regular file). A failed pull leaves the output as it was."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

import oci
from cloudboot.errors import CloudBootError
from cloudboot.image.output import refusal
from cloudboot.untrusted import file_name
from oci.client import Client
from oci.pull import resolve_verified
from oci.ref import Reference, parse_platform


def layer_names(manifest: dict, where: str) -> list[str]:
    """The file name of each layer: its title (`layer{i}` when it has none), checked by untrusted.file_name and
    unique; a CloudBootError names the layer otherwise."""
    names: list[str] = []
    seen: dict[str, int] = {}
    for i, layer in enumerate(manifest["layers"]):
        title = (layer.get("annotations") or {}).get(oci.ANN_TITLE, f"layer{i}")
        if not isinstance(title, str):
            raise CloudBootError(f"{where}: layer {i}'s title is not a string")
        name = file_name(title, f"{where}: layer {i}'s title")
        if name in seen:
            raise CloudBootError(f"{where}: layers {seen[name]} and {i} have the same title '{name}'; pulling both "
                                 "would lose one")
        seen[name] = i
        names.append(name)
    return names


def _existing(out: Path) -> bool:
    """True when `out` is a directory (or a link to one) to pull into; False when it does not exist (its parents
    are created); a CloudBootError when it is something else."""
    try:
        mode = os.stat(out).st_mode
    except FileNotFoundError:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CloudBootError(f"{out}: cannot create its directory {out.parent}: {exc.strerror or exc}") from None
        return False
    except OSError as exc:
        raise CloudBootError(f"{out}: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(mode):
        raise CloudBootError(f"{out}: is not a directory (pull writes the artifact's layers into a directory)")
    return True


def _check_free(out: Path, names: list[str], force: bool) -> None:
    """Refuse names of `out` that a pull would replace: anything not a regular file, and files unless `force`."""
    for name in names:
        try:
            mode = os.lstat(out / name).st_mode
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(mode):
            raise CloudBootError(refusal(out / name, mode))
        if not force:
            raise CloudBootError(f"{out / name}: exists (an earlier pull?); not replacing it without --force")


def _download(client: Client, ref: Reference, layer: dict, stage: Path, name: str, max_size: int) -> None:
    """One verified layer as `stage/name`, through a temporary file created exclusively in `stage`."""
    fd, tmp = tempfile.mkstemp(dir=stage, prefix=".layer-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            def restart() -> object:
                f.seek(0)
                f.truncate()
                return f

            client.fetch_blob_to_sink(ref, layer["digest"], restart, size=layer["size"], max_size=max_size)
            f.flush()
            os.fchmod(f.fileno(), 0o644)
            os.fsync(f.fileno())
        os.rename(tmp, stage / name)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _place(stage: Path, out: Path, names: list[str], existed: bool, force: bool) -> None:
    """Move the verified layers from `stage` to `out`: the whole directory when `out` did not exist, else file by
    file after checking again what is there."""
    if not existed:
        os.chmod(stage, 0o755)
        try:
            os.rename(stage, out)
            return
        except OSError as exc:
            raise CloudBootError(f"{out}: appeared while pulling; not replacing it ({exc.strerror})") from None
    _check_free(out, names, force)
    for name in names:
        os.rename(stage / name, out / name)


def pull_layers(client: Client, ref: Reference, platform: str, out: Path, *, verifier=None, policy: str = "off",
                max_size: int = 4 << 30, force: bool = False, log: Callable[[str], None] | None = None) -> dict:
    """Resolve `platform`'s manifest, check its signature, and write every layer under `out` as the module
    docstring says; returns {ref (pinned), signed_digest, verified, dir, files (the names written, in layer
    order)}."""
    os_, arch, _ = parse_platform(platform)
    manifest, pinned, top, verified = resolve_verified(client, ref, os_, arch, verifier, policy, log=log)
    names = layer_names(manifest, str(pinned))
    existed = _existing(out)
    if existed:
        _check_free(out, names, force)
    try:
        stage = Path(tempfile.mkdtemp(prefix=f".{out.name[:100]}.pull-", dir=out if existed else out.parent))
    except OSError as exc:
        raise CloudBootError(f"{out}: cannot write there: {exc.strerror or exc}") from None
    try:
        for layer, name in zip(manifest["layers"], names, strict=True):
            try:
                _download(client, pinned, layer, stage, name, max_size)
            except OSError as exc:
                raise CloudBootError(f"{out / name}: cannot write: {exc.strerror or exc}") from None
        try:
            _place(stage, out, names, existed, force)
        except OSError as exc:
            raise CloudBootError(f"{out}: cannot move the pulled layers into place: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return {"ref": str(pinned), "signed_digest": top, "verified": verified, "dir": str(out), "files": names}
