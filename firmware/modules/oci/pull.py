"""The pull flow every consumer uses: fetch ref, check its cosign signature under a policy, pick the
platform's manifest, then fetch layers by mediaType with verification."""

from oci.cosign import apply_policy
from oci.errors import ManifestError


def resolve_verified(client, ref, os="linux", arch="amd64", verifier=None, policy="off", log=None):
    """(manifest dict, pinned ref, top-level digest, verified?) for ref on os/arch.

    The signature is checked on the digest of what `ref` names (an index when multi-arch); the platform
    manifest is then fetched by the digest the signed index gives, so it is covered too."""
    fetched = client.get_manifest(ref)
    top = fetched[2]
    verified = apply_policy(client, ref, top, verifier, policy, log)
    manifest, _, _, pinned = client.resolve(ref, os, arch, fetched=fetched)
    return manifest, pinned, top, verified


def first_layer(manifest, media_type, where="manifest"):
    """The first layer of exactly `media_type` (the original's rule), or ManifestError."""
    for layer in manifest.get("layers", []):
        if layer.get("mediaType") == media_type:
            return layer
    raise ManifestError("%s: no layer of type %s" % (where, media_type))
