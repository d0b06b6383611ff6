"""cosign signature checks (REFERENCE §3.4), portable; the public-key math is a pluggable `verifier`.

A verifier is any object with `verify(signature_bytes, payload_bytes) -> bool` (ECDSA P-256: ASN.1 DER
signature over sha256(payload)). CPython fills it with `cryptography` (cloudboot.registry.cosign); the
firmware has none yet and says so under policy `enforce`.

Signatures live at `<repo>:sha256-<hex>.sig`: an image manifest whose layers of mediaType
`application/vnd.dev.cosign.simplesigning.v1+json` are simple-signing payloads, with the base64 signature in
the `dev.cosignproject.cosign/signature` annotation. A signature counts if it verifies AND its payload names
the manifest digest we fetched.
"""

import binascii

import oci
from compat import json
from oci.client import check_manifest, parse_json_object
from oci.errors import NotFound, OciError, SignatureError

POLICIES = ("enforce", "warn", "off")
#: DER SubjectPublicKeyInfo of an ecPublicKey on prime256v1, up to the 65-byte uncompressed point
P256_SPKI_PREFIX = binascii.unhexlify("3059301306072a8648ce3d020106082a8648ce3d030107034200")
PAYLOAD_MAX = 64 << 10
SIGNATURE_TYPE = "cosign container image signature"


def p256_point_from_pem(text):
    """The 65-byte uncompressed point (04 X Y) of a `cosign.pub` PEM holding an ECDSA P-256 key; ValueError
    naming what it is otherwise (the firmware verifies P-256 only, as the original's Path D)."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("ascii", "replace")
    begin, end = "-----BEGIN PUBLIC KEY-----", "-----END PUBLIC KEY-----"
    i, j = text.find(begin), text.find(end)
    if i < 0 or j < i:
        raise ValueError("no PEM PUBLIC KEY block")
    try:
        der = binascii.a2b_base64("".join(text[i + len(begin):j].split()))
    except Exception:
        raise ValueError("the PUBLIC KEY block is not base64") from None
    if len(der) != len(P256_SPKI_PREFIX) + 65 or der[:len(P256_SPKI_PREFIX)] != P256_SPKI_PREFIX or \
            der[len(P256_SPKI_PREFIX)] != 4:
        raise ValueError("not an ECDSA P-256 public key (%d-byte SubjectPublicKeyInfo)" % len(der))
    return der[len(P256_SPKI_PREFIX):]


def signature_tag(digest):
    """`sha256:<hex>` -> `sha256-<hex>.sig`."""
    return digest.replace(":", "-") + ".sig"


def simple_signing_payload(docker_reference, digest):
    """The canonical payload cosign signs (no whitespace, keys in cosign's order)."""
    return ('{"critical":{"identity":{"docker-reference":%s},"image":{"docker-manifest-digest":%s},'
            '"type":"%s"},"optional":null}' % (json.dumps(docker_reference), json.dumps(digest),
                                               SIGNATURE_TYPE)).encode()


def check_payload(payload, digest):
    """None if the simple-signing payload names `digest`, else the reason."""
    try:
        doc = json.loads(payload)
        critical = doc["critical"]
        got = critical["image"]["docker-manifest-digest"]
        kind = critical.get("type")
    except Exception:
        return "payload is not a simple-signing document"
    if kind != SIGNATURE_TYPE:
        return "payload type %r is not %r" % (kind, SIGNATURE_TYPE)
    if got != digest:
        return "payload signs %s, not %s" % (got, digest)
    return None


def verify(client, ref, digest, verifier):
    """Raise SignatureError unless a signature at ref's `.sig` tag verifies for manifest `digest`."""
    if verifier is None:
        raise SignatureError("%s: cosign verification asked for but no public key is available" % ref.name())
    sig_ref = ref.with_tag(signature_tag(digest))
    try:
        raw, _, _ = client.get_manifest(sig_ref)
    except NotFound:
        raise SignatureError("%s@%s: no cosign signature (%s not found)" % (ref.name(), digest, sig_ref.tag)) from None
    try:
        manifest = check_manifest(parse_json_object(raw, str(sig_ref)), str(sig_ref))
    except OciError as exc:
        raise SignatureError("%s: malformed signature manifest: %s" % (sig_ref, exc)) from None
    reasons = []
    for layer in manifest["layers"]:
        if layer.get("mediaType") != oci.MT_COSIGN_SIMPLESIGNING:
            continue
        ann = layer.get("annotations") or {}
        b64 = ann.get(oci.ANN_COSIGN_SIGNATURE)
        if not isinstance(b64, str) or not b64:
            reasons.append("layer without %s annotation" % oci.ANN_COSIGN_SIGNATURE)
            continue
        try:
            sig = binascii.a2b_base64(b64)
        except Exception:
            reasons.append("signature annotation is not base64")
            continue
        try:
            payload = client.fetch_blob_bytes(sig_ref, layer["digest"], layer.get("size"), PAYLOAD_MAX)
        except OciError as exc:
            reasons.append("payload: %s" % exc)
            continue
        if not verifier.verify(sig, payload):
            reasons.append("signature does not verify with the key")
            continue
        why = check_payload(payload, digest)
        if why:
            reasons.append(why)
            continue
        return True
    raise SignatureError("%s@%s: no valid cosign signature (%s)" % (ref.name(), digest,
                                                                   "; ".join(reasons) or "no signature layers"))


def apply_policy(client, ref, digest, verifier, policy="enforce", log=None):
    """verify() under a policy: enforce raises, warn logs and returns False, off skips. True when verified."""
    if policy not in POLICIES:
        raise SignatureError("cosign policy %r: want one of enforce, warn, off" % (policy,))
    if policy == "off":
        return False
    try:
        return verify(client, ref, digest, verifier)
    except SignatureError as exc:
        if policy == "enforce":
            raise
        if log:
            log("cosign (warn): %s" % exc)
        return False
