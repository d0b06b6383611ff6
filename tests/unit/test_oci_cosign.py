"""cosign interoperability with the real `cosign` CLI (Debian's package) against the real registry, key files,
and tampering refused under `enforce`."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import oci
from cloudboot.cli import main
from cloudboot.errors import CloudBootError
from cloudboot.registry.cosign import (
    Verifier,
    load_private_key,
    secretbox_open,
    secretbox_seal,
    sign_artifact,
    write_encrypted_key,
)
from oci.client import Client
from oci.cosign import signature_tag
from oci.errors import DigestMismatch, SignatureError
from oci.pull import resolve_verified
from oci.ref import parse
from oci.transport_cpython import Transport

PASSWORD = "cosign-test-pw"


@pytest.fixture(scope="module")
def cosign(tmp_path_factory) -> dict:
    """The cosign binary, a key pair it generated (encrypted key), and its environment."""
    from cloudboot.toolchain.cosign import cosign_exe

    exe = cosign_exe()
    home = tmp_path_factory.mktemp("cosign")
    env = {**os.environ, "COSIGN_PASSWORD": PASSWORD, "COSIGN_YES": "true", "HOME": str(home),
           "SIGSTORE_NO_CACHE": "1", "TUF_ROOT": str(home / "tuf")}
    subprocess.run([exe, "generate-key-pair"], cwd=home, env=env, check=True, capture_output=True)
    return {"exe": str(exe), "env": env, "key": home / "cosign.key", "pub": home / "cosign.pub", "dir": home}


def run_cosign(cosign: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([cosign["exe"], *args, "--allow-http-registry", "--allow-insecure-registry"],
                          cwd=cosign["dir"], env=cosign["env"], capture_output=True, text=True, timeout=120)


def push(registry, capsys, repo: str, tmp_path: Path, content: bytes = b"kernel") -> str:
    k = tmp_path / f"{repo.replace('/', '_')}.bin"
    k.write_bytes(content * 1000)
    ref = f"{registry.host}/{repo}:1"
    assert main(["push", "artifact", ref, "--platform", "linux/amd64", "--kernel", str(k), "--cmdline", "x"]) == 0
    capsys.readouterr()
    return ref


def client() -> Client:
    return Client(Transport(timeout=10), sleep=lambda s: None)


def test_secretbox_known_answer() -> None:
    # NaCl's crypto_secretbox test vector (tests/secretbox.c), first 32 ciphertext bytes after the tag
    key = bytes.fromhex("1b27556473e985d462cd51197a9a46c76009549eac6474f206c4ee0844f68389")
    nonce = bytes.fromhex("69696ee955b62b73cd62bda875fc73d68219e0036b7a0b37")
    msg = bytes.fromhex("be075fc53c81f2d5cf141316ebeb0c7b5228c52a4c62cbd44b66849b64244ffce5ecbaaf33bd751a"
                        "1ac728d45e6c61296cdc3c01233561f41db66cce314adb310e3be8250c46f06dceea3a7fa1348057"
                        "e2f6556ad6b1318a024a838f21af1fde048977eb48f59ffd4924ca1c60902e52f0a089bc76897040"
                        "e082f937763848645e0705")
    box = secretbox_seal(key, nonce, msg)
    assert box[:16].hex() == "f3ffc7703f9400e52a7dfb4b3d3305d9"
    assert box[16:48].hex() == "8e993b9f48681273c29650ba32fc76ce48332ea7164d96a4476fb8c531a1186a"
    assert secretbox_open(key, nonce, box) == msg
    assert secretbox_open(key, nonce, box[:-1] + bytes([box[-1] ^ 1])) is None


def test_key_files(tmp_path, cosign, monkeypatch) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    write_encrypted_key(key, tmp_path / "ours.key", "pw", n=1024)
    loaded = load_private_key(tmp_path / "ours.key", "pw")
    assert loaded.private_numbers() == key.private_numbers()
    with pytest.raises(CloudBootError, match="wrong password"):
        load_private_key(tmp_path / "ours.key", "nope")
    # cosign's own encrypted key, password from COSIGN_PASSWORD
    monkeypatch.setenv("COSIGN_PASSWORD", PASSWORD)
    theirs = load_private_key(cosign["key"])
    pub = serialization.load_pem_public_key(cosign["pub"].read_bytes())
    assert theirs.public_key().public_numbers() == pub.public_numbers()
    # plain PEM
    (tmp_path / "plain.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                           serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()))
    monkeypatch.setenv("COSIGN_PASSWORD", "")
    assert load_private_key(tmp_path / "plain.pem").private_numbers() == key.private_numbers()
    (tmp_path / "junk.key").write_text("hello")
    with pytest.raises(CloudBootError, match="not a cosign or PEM private key"):
        load_private_key(tmp_path / "junk.key")


def test_cosign_signs_we_verify(registry, cosign, tmp_path, capsys) -> None:
    ref = push(registry, capsys, "sig/by-cosign", tmp_path)
    r = run_cosign(cosign, "sign", "--key", "cosign.key", "--tlog-upload=false", ref)
    assert r.returncode == 0, r.stderr
    verifier = Verifier.from_file(cosign["pub"])
    _, pinned, top, verified = resolve_verified(client(), parse(ref), "linux", "amd64", verifier, "enforce")
    assert verified and pinned.digest == top
    code = main(["pull", ref, "-d", str(tmp_path / "out"), "--cosign-key", str(cosign["pub"]), "--json"])
    assert code == 0 and json.loads(capsys.readouterr().out)["verified"] is True


def test_we_sign_cosign_verifies(registry, cosign, tmp_path, capsys, monkeypatch) -> None:
    ref = push(registry, capsys, "sig/by-us", tmp_path)
    monkeypatch.setenv("COSIGN_PASSWORD", PASSWORD)
    assert main(["sign-artifact", ref, "--cosign-key", str(cosign["key"])]) == 0
    printed = capsys.readouterr().out.strip()
    r = run_cosign(cosign, "verify", "--key", "cosign.pub", "--insecure-ignore-tlog=true", ref)
    assert r.returncode == 0, r.stderr
    payload = json.loads(r.stdout)[0]
    assert payload["critical"]["image"]["docker-manifest-digest"] == printed.rsplit("@", 1)[1]
    # and an index signed by us verifies in cosign too (signing the index digest)
    idx = f"{registry.host}/sig/by-us:idx"
    assert main(["push", "index", idx, "-p", f"linux/amd64={ref}"]) == 0
    capsys.readouterr()
    assert main(["sign-artifact", idx, "--cosign-key", str(cosign["key"])]) == 0
    capsys.readouterr()
    r = run_cosign(cosign, "verify", "--key", "cosign.pub", "--insecure-ignore-tlog=true", idx)
    assert r.returncode == 0, r.stderr


def test_tampering_refused_under_enforce(registry, cosign, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("COSIGN_PASSWORD", PASSWORD)
    key = load_private_key(cosign["key"])
    verifier = Verifier.from_file(cosign["pub"])
    c = client()

    # 1. a tampered manifest: its digest no longer matches any signature
    ref = parse(push(registry, capsys, "tamper/manifest", tmp_path))
    signed, _ = sign_artifact(c, ref, key)
    resolve_verified(c, ref, "linux", "amd64", verifier, "enforce")
    stored = registry.blob_path(signed)
    stored.write_bytes(stored.read_bytes().replace(b'"vmlinuz"', b'"vmlinux"'))
    with pytest.raises(SignatureError, match="no cosign signature"):
        resolve_verified(c, ref, "linux", "amd64", verifier, "enforce")
    with pytest.raises(DigestMismatch):
        c.get_manifest(ref.with_digest(signed))
    logged = []
    _, _, _, verified = resolve_verified(c, ref, "linux", "amd64", verifier, "warn", logged.append)
    assert verified is False and "cosign (warn)" in logged[0]
    code = main(["pull", str(ref), "-d", str(tmp_path / "o1"), "--cosign-key", str(cosign["pub"])])
    assert code == 1 and "no cosign signature" in capsys.readouterr().err

    # 2. a tampered signature: the annotation holds another key's signature
    ref = parse(push(registry, capsys, "tamper/signature", tmp_path))
    other = ec.generate_private_key(ec.SECP256R1())
    signed, _ = sign_artifact(c, ref, other)
    with pytest.raises(SignatureError, match="does not verify"):
        resolve_verified(c, ref, "linux", "amd64", verifier, "enforce")
    # a signature manifest whose annotation was edited
    sig_ref = ref.with_tag(signature_tag(signed))
    raw, _, _ = c.get_manifest(sig_ref)
    doc = json.loads(raw)
    good = doc["layers"][0]["annotations"][oci.ANN_COSIGN_SIGNATURE]
    doc["layers"][0]["annotations"][oci.ANN_COSIGN_SIGNATURE] = base64.b64encode(
        base64.b64decode(good)[:-1] + b"\x00").decode()
    c.push_manifest(sig_ref, json.dumps(doc).encode(), oci.MT_OCI_MANIFEST)
    with pytest.raises(SignatureError):
        resolve_verified(c, ref, "linux", "amd64", verifier, "enforce")
    # the right key's signature added next to it: verifies (first good layer wins)
    sign_artifact(c, ref, key)
    assert resolve_verified(c, ref, "linux", "amd64", verifier, "enforce")[3] is True

    # 3. a tampered signature payload blob: digest mismatch, refused
    ref = parse(push(registry, capsys, "tamper/payload", tmp_path))
    signed, _ = sign_artifact(c, ref, key)
    raw, _, _ = c.get_manifest(ref.with_tag(signature_tag(signed)))
    payload_blob = registry.blob_path(json.loads(raw)["layers"][0]["digest"])
    payload_blob.write_bytes(payload_blob.read_bytes().replace(b"cosign", b"COSIGN"))
    with pytest.raises(SignatureError, match="digest mismatch"):
        resolve_verified(c, ref, "linux", "amd64", verifier, "enforce")

    # 4. a tampered kernel blob under a good signature: the blob check refuses it
    ref = parse(push(registry, capsys, "tamper/blob", tmp_path))
    sign_artifact(c, ref, key)
    manifest, pinned, _, _ = resolve_verified(c, ref, "linux", "amd64", verifier, "enforce")
    blob = registry.blob_path(manifest["layers"][0]["digest"])
    blob.write_bytes(b"X" + blob.read_bytes()[1:])
    with pytest.raises(DigestMismatch):
        c.fetch_blob_bytes(pinned, manifest["layers"][0]["digest"], manifest["layers"][0]["size"])
