"""oci: portable OCI distribution pull (and push) client (runs on MicroPython and CPython).

Modules: `ref` (reference grammar), `errors` (one class per failure), `http` (the small HTTP/1.1 interface
and URL helpers), `auth` (WWW-Authenticate), `client` (registry requests, index -> platform manifest,
verified blob download, upload), `cosign` (signature layer checks over a pluggable verifier).
`transport_cpython` is the CPython implementation of the HTTP interface and `hash_cpython` a blob hash that
runs beside the download (both CPython only, never imported by the others).
"""

# Media types (REFERENCE §3.1): wire-compatible with the original cloud-boot.
MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_CONFIG = "application/vnd.cloud-boot.boot.config.v1+json"
MT_KERNEL = "application/vnd.cloud-boot.kernel.v1"
MT_INITRD = "application/vnd.cloud-boot.initrd.v1"
MT_CMDLINE = "application/vnd.cloud-boot.cmdline.v1"
MT_MODULES = "application/vnd.cloud-boot.modules.v1.cpio+gzip"
MT_MODLOOP = "application/vnd.cloud-boot.modloop.v1+squashfs"
MT_APKOVL = "application/vnd.cloud-boot.apkovl.v1+tar.gz"
MT_SQUASHFS = "application/vnd.cloud-boot.squashfs.v1"
MT_PLAN = "application/vnd.cloud-boot.plan.v1+hcl"
#: Our addition: the plan already parsed (JSON), for consumers without an HCL parser (the firmware).
MT_PLAN_JSON = "application/vnd.cloud-boot.plan.v1+json"
MT_COSIGN_SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"

ANN_TITLE = "org.opencontainers.image.title"
ANN_SOURCE_BASENAME = "cloudboot.source.basename"
ANN_COSIGN_SIGNATURE = "dev.cosignproject.cosign/signature"

MANIFEST_TYPES = (MT_OCI_MANIFEST, MT_DOCKER_MANIFEST)
INDEX_TYPES = (MT_OCI_INDEX, MT_DOCKER_LIST)
ACCEPT_ALL = ", ".join((MT_OCI_MANIFEST, MT_OCI_INDEX, MT_DOCKER_MANIFEST, MT_DOCKER_LIST))
