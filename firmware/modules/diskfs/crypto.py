"""The crypto that encrypted disks need (LUKS, ZFS native encryption), behind one small interface.

MicroPython has none of it at native speed (PBKDF2 and Argon2 at real costs, AES-XTS over a kernel), so the
portable parsers call `provider()`, which CPython fills with `cryptography` and argon2-cffi
(diskfs.cryptocpython) and which raises Unsupported elsewhere: the firmware says "needs the Linux init".

A provider has:
  digest(name, data) -> bytes                         sha1, sha256, sha512 (and what hashlib knows)
  pbkdf2(name, password, salt, iterations, length)    PBKDF2-HMAC-<name>
  argon2(kind, password, salt, time, memory_kib, lanes, length)   kind "argon2i" or "argon2id", version 0x13
  sector_cipher(spec, key) -> object with decrypt(data, out, iv_sector, sector_size, step=1): LUKS ciphers
      ("aes-xts-plain64", "aes-cbc-essiv:sha256", ...); each `sector_size` piece of data is decrypted into
      out with the IV of sector iv_sector, iv_sector + step, ...; Unsupported for a cipher it lacks
  aead_decrypt(kind, key, nonce, data, tag, aad) -> bytes   "ccm" or "gcm"; None when the tag does not match
  hkdf_sha512(key, salt, info, length) -> bytes
  aes_ecb_decrypt(key, data) -> bytes
"""

from diskfs.errors import Unsupported

_PROVIDER = []


class NoProvider(Unsupported):
    """This runtime has no crypto provider (the firmware; an init built without the crypto modules)."""


def provider(what="LUKS"):
    """The crypto provider of this runtime; Unsupported("<what>: needs the Linux init ...") without one."""
    if not _PROVIDER:
        try:
            from diskfs import cryptocpython

            _PROVIDER.append(cryptocpython.Provider())
        except ImportError:
            _PROVIDER.append(None)
    if _PROVIDER[0] is None:
        raise NoProvider("%s: needs the Linux init (no AES, PBKDF2 or Argon2 on this runtime)" % what, what)
    return _PROVIDER[0]


def set_provider(p):
    """Install a provider (tests; a runtime with its own crypto); None: this runtime has none."""
    _PROVIDER[:] = [p]


def has_provider():
    """Whether this runtime can decrypt (without raising)."""
    try:
        provider()
        return True
    except Unsupported:
        return False
