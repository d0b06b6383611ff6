"""Push builders: artifacts, plans, indexes (REFERENCE §2.1, §3.1, §3.2) over the portable client.

Manifests are schemaVersion 2 OCI image manifests with no artifactType, subject or manifest annotations,
exactly like the original's, so its init and ours read each other's pushes.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import tempfile
from pathlib import Path

import oci
from cloudboot.errors import CloudBootError
from oci.client import Client, is_index, parse_json_object, sha256_digest
from oci.ref import Reference, parse_platform

#: Artifact payload flags in layer order, with each layer's title and mediaType (REFERENCE §3.2).
PAYLOADS = [("kernel", "vmlinuz", oci.MT_KERNEL), ("initrd", "initrd", oci.MT_INITRD),
            ("modules", "modules", oci.MT_MODULES), ("modloop", "modloop", oci.MT_MODLOOP),
            ("apkovl", "apkovl", oci.MT_APKOVL), ("squashfs", "squashfs", oci.MT_SQUASHFS)]


def canonical_json(obj: object) -> bytes:
    """Compact JSON with sorted keys (what Go's json.Marshal of a map gives)."""
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def manifest_json(config: dict, layers: list[dict]) -> bytes:
    """An OCI image manifest in Go struct field order, compact."""
    return json.dumps({"schemaVersion": 2, "mediaType": oci.MT_OCI_MANIFEST, "config": config, "layers": layers},
                      separators=(",", ":")).encode()


class _Progress(io.RawIOBase):
    """A file wrapper that draws `name  37% 120.0/320.0 MiB` on stderr while it is read (only on a TTY)."""

    def __init__(self, f, size: int, name: str) -> None:
        self.f, self.size, self.name, self.done, self.last = f, size, name, 0, -1
        self.show = sys.stderr.isatty() and size > (1 << 20)

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.done += len(data)
        pct = self.done * 100 // max(self.size, 1)
        if self.show and pct != self.last:
            self.last = pct
            end = "\n" if self.done >= self.size else ""
            print(f"\r{self.name:<12} {pct:3d}% {self.done / 1048576:.1f}/{self.size / 1048576:.1f} MiB", end=end,
                  file=sys.stderr, flush=True)
        return data

    def seek(self, pos: int, whence: int = 0) -> int:
        self.done = 0
        return self.f.seek(pos, whence)


def file_digest(path: Path) -> tuple[str, int]:
    """(sha256 digest, size) of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return "sha256:" + h.hexdigest(), size


def push_bytes(client: Client, ref: Reference, data: bytes, media_type: str,
               annotations: dict | None = None) -> dict:
    """Upload a blob from memory; return its descriptor."""
    digest = sha256_digest(data)
    client.push_blob(ref, data, digest, len(data))
    desc = {"mediaType": media_type, "digest": digest, "size": len(data)}
    if annotations:
        desc["annotations"] = annotations
    return desc


def push_file(client: Client, ref: Reference, path: Path, media_type: str, annotations: dict | None = None,
              label: str = "") -> dict:
    """Upload a blob from a file (streamed, with a progress bar on a TTY); return its descriptor."""
    digest, size = file_digest(path)
    with open(path, "rb") as f:
        client.push_blob(ref, _Progress(f, size, label or path.name), digest, size)
    desc = {"mediaType": media_type, "digest": digest, "size": size}
    if annotations:
        desc["annotations"] = annotations
    return desc


def push_artifact(client: Client, ref: Reference, platform: str, files: dict[str, Path],
                  cmdline: str | None = None) -> str:
    """`push artifact`: config {architecture, created: null, os}, then payload layers, then cmdline."""
    os_, arch, _ = parse_platform(platform)
    if not files and cmdline is None:
        raise CloudBootError("push artifact: give at least one of --kernel, --initrd, --modules, --modloop, "
                             "--apkovl, --squashfs, --cmdline")
    config = push_bytes(client, ref, canonical_json({"architecture": arch, "created": None, "os": os_}),
                        oci.MT_CONFIG)
    layers = []
    for flag, title, media_type in PAYLOADS:
        if flag in files:
            path = Path(files[flag])
            layers.append(push_file(client, ref, path, media_type,
                                    {oci.ANN_TITLE: title, oci.ANN_SOURCE_BASENAME: path.name}, label=title))
    if cmdline is not None:
        layers.append(push_bytes(client, ref, cmdline.encode(), oci.MT_CMDLINE, {oci.ANN_TITLE: "cmdline"}))
    return client.push_manifest(ref, manifest_json(config, layers), oci.MT_OCI_MANIFEST)


def push_plan(client: Client, ref: Reference, path: Path) -> str:
    """`push plan`: config {"created":null}; the raw HCL layer (REFERENCE §2.1), then the parsed JSON layer."""
    from cloudboot.planfile import for_push

    raw, parsed = for_push(path)
    config = push_bytes(client, ref, b'{"created":null}', oci.MT_CONFIG)
    layers = [push_bytes(client, ref, raw, oci.MT_PLAN, {oci.ANN_TITLE: path.name}),
              push_bytes(client, ref, canonical_json(parsed), oci.MT_PLAN_JSON,
                         {oci.ANN_TITLE: path.stem + ".json"})]
    return client.push_manifest(ref, manifest_json(config, layers), oci.MT_OCI_MANIFEST)


def push_modpack(client: Client, ref: Reference, path: Path) -> str:
    """`push modpack --push`: an artifact whose one layer is the modules cpio.gz at `path`."""
    config = push_bytes(client, ref, canonical_json({"created": None}), oci.MT_CONFIG)
    layer = push_file(client, ref, path, oci.MT_MODULES, {oci.ANN_TITLE: "modules",
                                                          oci.ANN_SOURCE_BASENAME: path.name})
    return client.push_manifest(ref, manifest_json(config, [layer]), oci.MT_OCI_MANIFEST)


def _copy_manifest(client: Client, src: Reference, dst: Reference, raw: bytes, media_type: str) -> None:
    """Make a manifest of another repository (same or other registry) exist in dst's repository."""
    doc = parse_json_object(raw, str(src))
    descs = [doc["config"]] if isinstance(doc.get("config"), dict) else []
    descs += [d for d in doc.get("layers", []) if isinstance(d, dict)]
    for d in descs:
        if client.blob_exists(dst, d["digest"]):
            continue
        with tempfile.TemporaryDirectory(prefix="cloudboot-copy-") as tmp:
            part = os.path.join(tmp, "blob")
            client.fetch_blob_to_path(src, d["digest"], part, size=d.get("size"))
            with open(part, "rb") as f:
                client.push_blob(dst, f, d["digest"], d["size"])
    client.push_manifest(dst, raw, media_type, reference=sha256_digest(raw))


def push_index(client: Client, ref: Reference, entries: list[tuple[str, Reference]]) -> str:
    """`push index`: one descriptor per os/arch=REF with the exact bytes' digest and size, in the given order."""
    manifests = []
    for platform, child in entries:
        os_, arch, variant = parse_platform(platform)
        raw, content_type, digest = client.get_manifest(child)
        doc = parse_json_object(raw, str(child))
        media_type = content_type or doc.get("mediaType") or oci.MT_OCI_MANIFEST
        if is_index(doc, media_type):
            raise CloudBootError(f"push index: {child} is itself an index; give a per-platform manifest")
        if (child.registry, child.repository) != (ref.registry, ref.repository):
            _copy_manifest(client, child, ref, raw, media_type)
        plat = {"architecture": arch, "os": os_}
        if variant:
            plat["variant"] = variant
        manifests.append({"mediaType": media_type, "digest": digest, "size": len(raw), "platform": plat})
    raw = json.dumps({"schemaVersion": 2, "mediaType": oci.MT_OCI_INDEX, "manifests": manifests},
                     separators=(",", ":")).encode()
    return client.push_manifest(ref, raw, oci.MT_OCI_INDEX)


def pinned(ref: Reference, digest: str) -> str:
    """What the push verbs print: `registry/repo:tag@digest`."""
    return str(Reference(ref.registry, ref.repository, ref.tag, digest, ref.scheme))

