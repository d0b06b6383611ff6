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
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

import arches
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


#: The largest image config `pull --platform` reads to see the platform of a manifest that is not an index.
CONFIG_MAX = 4 << 20


def check_platform(client: Client, ref: Reference, manifest: dict, os_: str, arch: str,
                   log: Callable[[str], None] | None = None) -> None:
    """A manifest that `ref` names directly (not through an index) must be for `os_`/`arch`, as its config's `os`
    and `architecture` say (a CloudBootError naming both platforms otherwise); a config that names no platform
    (not JSON, or without those fields) is taken as it is, with a note through `log`."""
    config = manifest.get("config")
    if not isinstance(config, dict) or not str(config.get("mediaType", "")).endswith("json") \
            or not isinstance(config.get("size"), int) or not isinstance(config.get("digest"), str):
        found = None  # not a config one can read a platform from (the pull's own checks judge the manifest)
    elif config["size"] > CONFIG_MAX:
        raise CloudBootError(f"{ref}: its config is {config['size']} bytes, more than the {CONFIG_MAX} read to "
                             "see its platform")
    else:
        raw = client.fetch_blob_bytes(ref, config["digest"], size=config["size"], max_size=CONFIG_MAX)
        try:
            doc = json.loads(raw)
        except (ValueError, RecursionError):
            doc = None
        found = doc if isinstance(doc, dict) and isinstance(doc.get("os"), str) \
            and isinstance(doc.get("architecture"), str) else None
    if found is None:
        if log:
            log(f"{ref}: one manifest (not an index) whose config names no platform; taking it for {os_}/{arch}")
        return
    have = f"{found['os']}/{arches.go_name(found['architecture'])}"
    if have != f"{os_}/{arch}":
        raise CloudBootError(f"{ref}: no manifest for {os_}/{arch} (--platform): it names one manifest, not an "
                             f"index, and that is for {have}")


def _existing(out: Path) -> bool:
    """True when `out` is a directory (or a link to one) to pull into; False when it does not exist; a
    CloudBootError when it is something else."""
    try:
        mode = os.stat(out).st_mode
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise CloudBootError(f"{out}: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(mode):
        raise CloudBootError(f"{out}: is not a directory (pull writes the artifact's layers into a directory)")
    return True


def _make_parents(out: Path) -> list[Path]:
    """Create the missing directories above `out`; returns them, outermost first (a failed pull removes them)."""
    missing = [d for d in [out.parent, *out.parent.parents] if not d.is_dir()][::-1]
    made: list[Path] = []
    for d in missing:
        try:
            d.mkdir()
        except FileExistsError:
            if d.is_dir():
                continue
            _remove_dirs(made)
            raise CloudBootError(f"{out}: {d} is not a directory") from None
        except OSError as exc:
            _remove_dirs(made)
            raise CloudBootError(f"{out}: cannot create its directory {d}: {exc.strerror or exc}") from None
        made.append(d)
    return made


def _remove_dirs(made: list[Path]) -> None:
    """Remove the directories `_make_parents` made (innermost first), each only while it is empty."""
    for d in reversed(made):
        with contextlib.suppress(OSError):
            d.rmdir()


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


def pull_layers(client: Client, ref: Reference, platform: str | None, out: Path, *, verifier=None,
                policy: str = "off", max_size: int = 4 << 30, force: bool = False,
                log: Callable[[str], None] | None = None) -> dict:
    """Resolve `platform`'s manifest (linux/amd64 from an index when None), check its signature, and write every
    layer under `out` as the module docstring says; returns {ref (pinned), signed_digest, verified, dir, files
    (the names written, in layer order)}. A `platform` given is also checked against a manifest `ref` names
    directly (check_platform)."""
    os_, arch, _ = parse_platform(platform or "linux/amd64")
    manifest, pinned, top, verified = resolve_verified(client, ref, os_, arch, verifier, policy, log=log)
    if platform and pinned.digest == top:
        check_platform(client, ref, manifest, os_, arch, log)
    names = layer_names(manifest, str(pinned))
    existed = _existing(out)
    if existed:
        _check_free(out, names, force)
    made = [] if existed else _make_parents(out)
    try:
        stage = Path(tempfile.mkdtemp(prefix=f".{out.name[:100]}.pull-", dir=out if existed else out.parent))
    except OSError as exc:
        _remove_dirs(made)
        raise CloudBootError(f"{out}: cannot write there: {exc.strerror or exc}") from None
    placed = False
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
        placed = True
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if not placed:
            _remove_dirs(made)
    return {"ref": str(pinned), "signed_digest": top, "verified": verified, "dir": str(out), "files": names}
