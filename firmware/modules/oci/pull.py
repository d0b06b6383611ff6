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


#: A boot artifact's layer role by media type, then by title annotation (REFERENCE §2.5 resolveKind).
ROLE_BY_TITLE = {"vmlinuz": "kernel", "kernel": "kernel", "initrd": "initrd", "initramfs": "initrd",
                 "modules": "modules", "modloop": "modloop", "modloop-virt": "modloop", "apkovl": "apkovl",
                 "squashfs": "squashfs", "filesystem.squashfs": "squashfs", "cmdline": "cmdline"}
#: The plan target fields that name artifacts, in the order their layers are taken (later ones win per role).
TARGET_FIELDS = ("index", "kernel", "initrd", "modules")


def layer_role(layer):
    """"kernel", "initrd", "modules", "modloop", "apkovl", "squashfs", "cmdline" or "" (not a boot layer)."""
    import oci

    by_type = {oci.MT_KERNEL: "kernel", oci.MT_INITRD: "initrd", oci.MT_MODULES: "modules",
               oci.MT_MODLOOP: "modloop", oci.MT_APKOVL: "apkovl", oci.MT_SQUASHFS: "squashfs",
               oci.MT_CMDLINE: "cmdline"}
    role = by_type.get(layer.get("mediaType", ""))
    if role:
        return role
    return ROLE_BY_TITLE.get((layer.get("annotations") or {}).get(oci.ANN_TITLE, ""), "")


def target_refs(target):
    """The distinct artifact references a plan target names, in TARGET_FIELDS order: [(field, reference)]."""
    out, seen = [], []
    for field in TARGET_FIELDS:
        text = target.get(field) or ""
        if text and text not in seen:
            seen.append(text)
            out.append((field, text))
    return out


def target_layers(target, manifest_of):
    """(field, pinned reference, layer, role) for every layer of every artifact `target` names (each reference
    fetched once, through `manifest_of(reference) -> (manifest, pinned)`), the init's and the firmware's one walk."""
    for field, text in target_refs(target):
        manifest, pinned = manifest_of(text)
        for layer in manifest.get("layers", []):
            yield field, pinned, layer, layer_role(layer)
