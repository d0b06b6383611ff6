"""Hostile artifacts through `cloud-boot pull` against the real registry: layer titles that collide or are not
file names, a symbolic link planted where the download used to go, a layer that fails verification (nothing
written, an older artifact untouched), files already in the output directory, an artifact for another platform
than the one asked, output directories on read-only or full filesystems, and nonsense limits."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import oci
from cloudboot.registry.push import manifest_json
from oci.client import Client, sha256_digest
from oci.ref import parse
from oci.transport_cpython import Transport
from tests.unit.hostile import cli, ok, refused, tmpfs


def push(registry, name: str, layers: list[tuple[str | None, bytes]]) -> str:
    """Push an artifact whose layers have these (title, bytes) (no title annotation for None); its reference."""
    ref = parse(f"{registry.host}/hostile/{name}:1")
    client = Client(Transport(timeout=10), sleep=lambda s: None)
    config = b"{}"
    client.push_blob(ref, config, sha256_digest(config), len(config))
    descs = []
    for title, data in layers:
        digest = sha256_digest(data)
        if not client.blob_exists(ref, digest):
            client.push_blob(ref, data, digest, len(data))
        desc = {"mediaType": "application/octet-stream", "digest": digest, "size": len(data)}
        if title is not None:
            desc["annotations"] = {oci.ANN_TITLE: title}
        descs.append(desc)
    cfg = {"mediaType": oci.MT_CONFIG, "digest": sha256_digest(config), "size": len(config)}
    client.push_manifest(ref, manifest_json(cfg, descs), oci.MT_OCI_MANIFEST)
    return str(ref)


def tree(path: Path) -> dict[str, bytes | str]:
    """Every entry under `path`: a file's bytes, a link's target."""
    out: dict[str, bytes | str] = {}
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            p = Path(root) / name
            rel = str(p.relative_to(path))
            if p.is_symlink():
                out[rel] = "-> " + os.readlink(p)
            elif p.is_file():
                out[rel] = p.read_bytes()
    return out


def test_titles_x_and_x_part_both_arrive_and_json_says_what_was_written(registry, tmp_path: Path) -> None:
    ref = push(registry, "parts", [("x.part", b"second"), ("x", b"first"), (None, b"untitled")])
    out = tmp_path / "out"
    data = json.loads(ok(cli("pull", ref, "-d", str(out), "--json")))
    assert data["files"] == ["x.part", "x", "layer2"] and data["dir"] == str(out)
    assert tree(out) == {"x.part": b"second", "x": b"first", "layer2": b"untitled"}
    assert os.listdir(tmp_path) == ["out"]  # no staging directory left


def test_colliding_and_unusable_titles_are_refused_before_any_write(registry, tmp_path: Path) -> None:
    cases = {
        "same": ([("k", b"a"), ("k", b"b")], "layers 0 and 1 have the same title 'k'"),
        "dotdot": ([("..", b"a")], "layer 0's title '..' cannot be a file name"),
        "escape": ([("../../evil", b"a")], "holds a '/'"),
        "slash": ([("ok", b"a"), ("a/b", b"b")], "layer 1's title 'a/b'"),
        "terminal": ([("red\x1b[31m\nline", b"a")], "'red\\e[31m\\nline' cannot be a file name"),
        "nul": ([("n\x00ul", b"a")], "'n\\x00ul'"),
        "long": ([("y" * 300, b"a")], "longer than 255 bytes"),
        "empty": ([("", b"a")], "not a file name"),
    }
    for name, (layers, want) in cases.items():
        out = tmp_path / name
        refused(cli("pull", push(registry, name, layers), "-d", str(out)), want)
        assert sorted(os.listdir(tmp_path)) == [], name  # nothing created, not even the directory


def test_a_planted_link_is_never_written_through(registry, tmp_path: Path) -> None:
    ref = push(registry, "planted", [("vmlinuz", b"kernel bytes")])
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / "vmlinuz.part").symlink_to(victim)  # where the download used to be opened
    ok(cli("pull", ref, "-d", str(out)))
    assert victim.read_bytes() == b"precious"
    assert tree(out) == {"vmlinuz.part": "-> " + str(victim), "vmlinuz": b"kernel bytes"}
    # a link at the layer's own name is not replaced, not even with --force
    (out / "vmlinuz").unlink()
    (out / "vmlinuz").symlink_to(victim)
    refused(cli("pull", ref, "-d", str(out), "--force"), f"{out}/vmlinuz: is a symbolic link")
    assert victim.read_bytes() == b"precious" and os.readlink(out / "vmlinuz") == str(victim)


def test_a_failed_pull_leaves_nothing_and_an_older_artifact_untouched(registry, tmp_path: Path) -> None:
    old = push(registry, "art", [("vmlinuz", b"old kernel"), ("initrd", b"old initrd")])
    out = tmp_path / "out"
    ok(cli("pull", old, "-d", str(out)))
    good, bad = os.urandom(100000), os.urandom(100000)
    new = push(registry, "art2", [("vmlinuz", good), ("initrd", bad)])
    blob = registry.blob_path(sha256_digest(bad))
    blob.write_bytes(bytes(b ^ 0xFF for b in bad))  # the registry now serves bytes that do not verify
    before = tree(out)
    refused(cli("pull", new, "-d", str(out), "--force"), "digest mismatch")
    assert tree(out) == before  # not the verified first layer either: the older artifact stays whole
    refused(cli("pull", new, "-d", str(tmp_path / "fresh")), "digest mismatch")
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_existing_files_are_replaced_only_with_force(registry, tmp_path: Path) -> None:
    ref = push(registry, "again", [("vmlinuz", b"v2")])
    out = tmp_path / "out"
    out.mkdir()
    (out / "vmlinuz").write_bytes(b"v1")
    (out / "notes").write_bytes(b"mine")
    refused(cli("pull", ref, "-d", str(out)), f"{out}/vmlinuz: exists", "--force")
    assert (out / "vmlinuz").read_bytes() == b"v1"
    ok(cli("pull", ref, "-d", str(out), "--force"))
    assert tree(out) == {"vmlinuz": b"v2", "notes": b"mine"}
    # an empty directory is simply filled; a file or a path under a file is one line
    (tmp_path / "empty").mkdir()
    ok(cli("pull", ref, "-d", str(tmp_path / "empty")))
    assert tree(tmp_path / "empty") == {"vmlinuz": b"v2"}
    refused(cli("pull", ref, "-d", str(out / "notes")), "is not a directory")
    refused(cli("pull", ref, "-d", str(out / "notes" / "sub")), "sub: Not a directory")


def test_nonsense_limits_are_usage_errors(tmp_path: Path) -> None:
    for flag, value in (("--max-size", "-1"), ("--max-size", "0"), ("--max-size", "x")):
        refused(cli("pull", "127.0.0.1:1/x:1", "-d", str(tmp_path / "o"), flag, value), flag, "above 0", status=2)
    refused(cli("pull", "127.0.0.1:1/x:1", "-d", ""), "-d/--dir: an empty path", status=2)  # was the current directory


def test_the_clients_part_file_is_not_opened_through_a_link(registry, tmp_path: Path) -> None:
    """fetch_blob_to_path (the Linux init's plan mode, push's copies) creates `<path>.part` anew."""
    ref = push(registry, "client", [("k", b"layer bytes")])
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    (tmp_path / "k.part").symlink_to(victim)
    client = Client(Transport(timeout=10), sleep=lambda s: None)
    client.fetch_blob_to_path(parse(ref), sha256_digest(b"layer bytes"), str(tmp_path / "k"), size=11)
    assert victim.read_bytes() == b"precious" and (tmp_path / "k").read_bytes() == b"layer bytes"
    assert not (tmp_path / "k.part").exists() and not (tmp_path / "k.part").is_symlink()


def test_a_platform_asked_is_checked_on_one_manifest_as_on_an_index(registry, tmp_path: Path) -> None:
    """`--platform linux/arm64` on an amd64-only artifact (one manifest whose config says amd64, or an index without
    arm64) is one line naming both platforms, nothing written; without --platform, or with a config that names no
    platform, the manifest is taken as it is."""
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(b"an amd64 kernel")
    single = f"{registry.host}/hostile/amd64-only:1"
    ok(cli("push", "artifact", single, "--platform", "linux/amd64", "--kernel", str(kernel)))
    multi = f"{registry.host}/hostile/amd64-index:1"
    ok(cli("push", "multi", multi, "--kernel", f"linux/amd64={kernel}"))
    out = tmp_path / "out"
    refused(cli("pull", single, "-d", str(out), "--platform", "linux/arm64"),
            f"{single}: no manifest for linux/arm64 (--platform)", "for linux/amd64")
    refused(cli("pull", multi, "-d", str(out), "--platform", "linux/arm64"),
            "no manifest in index for linux/arm64 (has: linux/amd64)")
    assert not out.exists()
    for args in ([], ["--platform", "linux/x86_64"]):  # the arch in another spelling is the same platform
        ok(cli("pull", single, "-d", str(out), "--force", *args))
        assert (out / "vmlinuz").read_bytes() == b"an amd64 kernel"
    unknown = push(registry, "no-platform", [("k", b"bytes")])  # config {}: nothing to check against
    proc = cli("pull", unknown, "-d", str(tmp_path / "any"), "--platform", "linux/arm64")
    assert ok(proc) and "config names no platform; taking it for linux/arm64" in proc.stderr.decode()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_pull_onto_a_read_only_or_full_filesystem_leaves_nothing(registry, tmp_path: Path) -> None:
    ref = push(registry, "large", [("vmlinuz", os.urandom(3 << 20)), ("initrd", b"small")])
    with tmpfs(tmp_path / "full", "size=1m") as full, tmpfs(tmp_path / "ro", "size=1m,ro") as ro:
        for out in (full, full / "out", full / "a" / "b" / "out"):
            refused(cli("pull", ref, "-d", str(out)), f"{out}/vmlinuz: cannot write", "No space left on device")
            assert os.listdir(full) == [], out  # no staging directory, no half layer, no parents made for it
        for out in (ro, ro / "out", ro / "a" / "out"):
            refused(cli("pull", ref, "-d", str(out)), str(out), "Read-only file system")
        (full / "file").write_bytes(b"mine")
        refused(cli("pull", ref, "-d", str(full / "file")), "is not a directory")
        refused(cli("pull", ref, "-d", str(full / "file" / "a" / "b")), "Not a directory")
        assert os.listdir(full) == ["file"] and (full / "file").read_bytes() == b"mine"
