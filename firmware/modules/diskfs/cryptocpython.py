"""The CPython crypto provider for diskfs.crypto: `cryptography` (AES, HKDF, AEAD), hashlib (PBKDF2 through
OpenSSL) and argon2-cffi's low-level API (Argon2i and Argon2id, which `cryptography` lacks or has only in part).
Importing this module fails (ImportError) where those are missing: the portable code then says so."""

import hashlib
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from diskfs.errors import Corrupt, Unsupported

#: LUKS cipher modes this provider decrypts: mode -> (block cipher mode, IV generator)
MODES = {"xts-plain64": ("xts", "plain64"), "xts-plain": ("xts", "plain"), "cbc-essiv:sha256": ("cbc", "essiv"),
         "cbc-plain64": ("cbc", "plain64"), "cbc-plain": ("cbc", "plain"), "ecb": ("ecb", None)}


class SectorCipher:
    """AES in a LUKS mode over runs of sectors (one OpenSSL call per sector: the IV changes every sector)."""

    def __init__(self, spec, key):
        cipher, _, mode = spec.partition("-")
        if cipher != "aes" or mode not in MODES:
            raise Unsupported("LUKS cipher %s unsupported (aes-xts-plain64, aes-xts-plain, aes-cbc-essiv:sha256, "
                              "aes-cbc-plain64, aes-cbc-plain, aes-ecb are)" % spec, spec)
        self.mode, self.ivgen = MODES[mode]
        try:
            self.alg = algorithms.AES(bytes(key))
            if self.ivgen == "essiv":
                self.essiv = Cipher(algorithms.AES(hashlib.sha256(bytes(key)).digest()), modes.ECB()).encryptor()
        except ValueError as exc:
            raise Corrupt("LUKS: %d-byte key for %s: %s" % (len(key), spec, exc), "LUKS key") from None

    def _ivs(self, sector, count, step):
        if self.ivgen == "plain":
            raw = b"".join(struct.pack("<I12x", (sector + i * step) & 0xFFFFFFFF) for i in range(count))
        else:
            raw = b"".join(struct.pack("<Q8x", sector + i * step) for i in range(count))
        return self.essiv.update(raw) if self.ivgen == "essiv" else raw

    def decrypt(self, data, out, sector, sector_size, step=1):
        data = memoryview(data)
        out = memoryview(out)
        count = len(data) // sector_size
        if self.mode == "ecb":
            out[:count * sector_size] = Cipher(self.alg, modes.ECB()).decryptor().update(data[:count * sector_size])
            return
        ivs = self._ivs(sector, count, step)
        mode = modes.XTS if self.mode == "xts" else modes.CBC
        try:
            for i in range(count):
                a = i * sector_size
                d = Cipher(self.alg, mode(ivs[16 * i:16 * i + 16])).decryptor()
                out[a:a + sector_size] = d.update(data[a:a + sector_size])
        except ValueError as exc:  # e.g. an XTS key whose halves are equal
            raise Corrupt("LUKS: cannot decrypt with this key: %s" % exc, "LUKS key") from None


class Provider:
    """diskfs.crypto's interface, filled by CPython libraries."""

    def digest(self, name, data):
        return hashlib.new(name, bytes(data)).digest()

    def pbkdf2(self, name, password, salt, iterations, length):
        return hashlib.pbkdf2_hmac(name, bytes(password), bytes(salt), iterations, length)

    def argon2(self, kind, password, salt, time_cost, memory_kib, lanes, length):
        try:
            from argon2.low_level import Type, hash_secret_raw
        except ImportError:
            raise Unsupported("%s: needs argon2-cffi (Debian: python3-argon2)" % kind, kind) from None
        return hash_secret_raw(bytes(password), bytes(salt), time_cost, memory_kib, lanes, length,
                               Type.I if kind == "argon2i" else Type.ID, 0x13)

    def sector_cipher(self, spec, key):
        return SectorCipher(spec, key)

    def aead_decrypt(self, kind, key, nonce, data, tag, aad):
        aead = AESCCM(bytes(key), tag_length=len(tag)) if kind == "ccm" else AESGCM(bytes(key))
        try:
            return aead.decrypt(bytes(nonce), bytes(data) + bytes(tag), bytes(aad) if aad else None)
        except InvalidTag:
            return None

    def hkdf_sha512(self, key, salt, info, length):
        return HKDF(hashes.SHA512(), length, bytes(salt) if salt else None, bytes(info)).derive(bytes(key))

    def aes_ecb_decrypt(self, key, data):
        return Cipher(algorithms.AES(bytes(key)), modes.ECB()).decryptor().update(bytes(data))
