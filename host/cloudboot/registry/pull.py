"""`pull`: an artifact's layers into a directory, each named by its title, verified on the way (digests always,
cosign as the policy says)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cloudboot.errors import CloudBootError
from oci.client import Client
from oci.pull import resolve_verified
from oci.ref import Reference, parse_platform


def pull_layers(client: Client, ref: Reference, platform: str, out: Path, *, verifier=None, policy: str = "off",
                max_size: int = 4 << 30, log: Callable[[str], None] | None = None) -> dict:
    """Resolve `platform`'s manifest, check its signature, write every layer under `out` (created); returns
    {ref (pinned), signed_digest, verified, files}."""
    os_, arch, _ = parse_platform(platform)
    manifest, pinned, top, verified = resolve_verified(client, ref, os_, arch, verifier, policy, log=log)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for i, layer in enumerate(manifest["layers"]):
        title = (layer.get("annotations") or {}).get("org.opencontainers.image.title") or f"layer{i}"
        name = Path(title).name
        if name in ("", ".", ".."):
            raise CloudBootError(f"{pinned}: layer {i} has an unusable title {title!r}")
        client.fetch_blob_to_path(pinned, layer["digest"], str(out / name), size=layer["size"], max_size=max_size)
        files.append(name)
    return {"ref": str(pinned), "signed_digest": top, "verified": verified, "files": files}
