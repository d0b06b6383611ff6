"""One exception class per registry failure, so callers (and users) can tell them apart."""


class OciError(Exception):
    """Base of every error raised by the oci package."""


class BadReference(OciError):
    """A reference (registry/repo:tag@digest) or platform string is malformed."""


class TransportError(OciError):
    """The connection failed or timed out (retried with backoff before it surfaces)."""


class DeadlineExceeded(TransportError):
    """A request (connect to last byte) outlived its deadline; never retried: a registry that slow (or one that
    trickles a byte at a time) would be again."""


class RegistryError(OciError):
    """The registry answered with a status we do not expect; `status` carries it."""

    def __init__(self, msg, status=0, code=""):
        super().__init__(msg)
        self.status = status
        self.code = code


class AuthError(RegistryError):
    """401/403: credentials missing or rejected (after the token/basic challenge was answered)."""


class NotFound(RegistryError):
    """404: the manifest, tag, blob or repository does not exist."""


class ServerError(RegistryError):
    """5xx (or 408/429) that persisted after every retry."""


class DigestMismatch(OciError):
    """Downloaded bytes do not hash to the digest that named them; nothing of them is used."""


class TooLarge(OciError):
    """A manifest or blob exceeds its size cap (or its descriptor's size); nothing of it is used."""


class ManifestError(OciError):
    """A manifest or index is not valid JSON of the expected shape, or no platform matches."""


class SignatureError(OciError):
    """cosign verification failed (missing, malformed or wrong signature) under policy `enforce`."""
