"""ZFS native encryption, read side: a dataset's wrapped keys unwrapped and its blocks decrypted, every
authentication tag checked before a byte is used.

The encryption root's DSL crypto-key object (a MOS ZAP) holds the suite (AES-128/192/256 in CCM or GCM), the
master key and the HMAC key wrapped by the user's key (AEAD with the root's IV and MAC, the dataset GUID, suite
and version as associated data), and how the wrapping key comes from the user: `keyformat` raw (32 bytes), hex
(64 hex digits) or passphrase (PBKDF2-HMAC-SHA1 with `pbkdf2salt`, its 64-bit value little-endian, and
`pbkdf2iters`). Each encrypted block pointer carries an 8-byte salt and a 12-byte IV (in its third DVA and the
top of its fill count) and a 16-byte MAC (the last two checksum words); the block key is
HKDF-SHA512(master key, info = salt). Dnode blocks are encrypted in part: the bonus buffers of encrypted
types are the ciphertext, the rest (dnode cores with non-portable bits masked, block pointers reduced to their
portable bits and MACs) the associated data. Crypto from diskfs.crypto (CPython only)."""

import struct

from diskfs import crypto
from diskfs.errors import Corrupt, LimitExceeded, Locked, Unsupported
from diskfs.zfspool import is_encrypted_type

SUITES = {3: ("ccm", 16), 4: ("ccm", 24), 5: ("ccm", 32), 6: ("gcm", 16), 7: ("gcm", 24), 8: ("gcm", 32)}
KEYFORMATS = {1: "raw", 2: "hex", 3: "passphrase"}
OT_DNODE, OT_OBJSET = 10, 11
MAX_ITERS = 100000000


def _bytes(value, what, where):
    if not isinstance(value, bytes):
        raise Corrupt("%s: DSL crypto key has no %s" % (where, what), "ZFS crypto key")
    return value


def _int(value, what, where):
    if not isinstance(value, int):
        raise Corrupt("%s: DSL crypto key has no %s" % (where, what), "ZFS crypto key")
    return value


class DatasetKey:
    """The unwrapped master key of one encrypted dataset, and the block decryption that uses it."""

    def __init__(self, mos, dir_zap, where, passphrase=None, key=None):
        self.where = where
        kobj = dir_zap.get("com.datto:crypto_key_obj")
        if not isinstance(kobj, int):
            raise Corrupt("%s: encrypted dataset without a crypto key object" % where, "ZFS crypto key")
        k = mos.zap(kobj)
        suite = _int(k.get("DSL_CRYPTO_SUITE"), "suite", where)
        if suite not in SUITES:
            raise Unsupported("%s: encryption suite %d unsupported" % (where, suite), "ZFS encryption suite")
        self.mode, self.keylen = SUITES[suite]
        root = k
        root_dir = k.get("DSL_CRYPTO_ROOT_DDOBJ")
        if isinstance(root_dir, int):
            rk = mos.zap(root_dir).get("com.datto:crypto_key_obj")
            if isinstance(rk, int) and rk != kobj:
                root = mos.zap(rk)
        p = crypto.provider("ZFS native encryption")
        wkey = self._wrapping_key(p, root, passphrase, key)
        guid, version = _int(k.get("DSL_CRYPTO_GUID"), "GUID", where), k.get("DSL_CRYPTO_VERSION", 0)
        aad = struct.pack("<Q", guid) if version == 0 else struct.pack("<QQQ", guid, suite, version)
        wrapped = _bytes(k.get("DSL_CRYPTO_MASTER_KEY_1"), "master key", where)[:self.keylen]
        wrapped += _bytes(k.get("DSL_CRYPTO_HMAC_KEY_1"), "HMAC key", where)[:64]
        plain = p.aead_decrypt(self.mode, wkey, _bytes(k.get("DSL_CRYPTO_IV"), "IV", where)[:12], wrapped,
                               _bytes(k.get("DSL_CRYPTO_MAC"), "MAC", where)[:16], aad)
        if plain is None:
            raise Locked("%s: wrong key: it does not unwrap the dataset's master key" % where)
        self.master, self.hmac = plain[:self.keylen], plain[self.keylen:]
        self.version = version
        self.p = p
        self._keys = {}

    def _wrapping_key(self, p, root, passphrase, key):
        fmt = KEYFORMATS.get(root.get("keyformat"))
        if fmt is None:
            raise Corrupt("%s: keyformat %r unknown" % (self.where, root.get("keyformat")), "ZFS crypto key")
        secret = passphrase if fmt == "passphrase" else key
        if secret is None:
            secret = key if passphrase is None else passphrase
        if secret is None:
            raise Locked("%s is encrypted (keyformat %s): a %s is needed to open it"
                         % (self.where, fmt, "passphrase" if fmt == "passphrase" else "key file"))
        secret = secret.encode() if isinstance(secret, str) else bytes(secret)
        if fmt == "raw":
            if len(secret) != 32:
                raise Locked("%s: a raw key is 32 bytes, not %d" % (self.where, len(secret)))
            return secret
        if fmt == "hex":
            try:
                import binascii

                out = binascii.unhexlify(secret.strip())
            except (ValueError, TypeError):
                out = b""
            if len(out) != 32:
                raise Locked("%s: a hex key is 64 hexadecimal digits" % self.where)
            return out
        iters = _int(root.get("pbkdf2iters"), "pbkdf2iters", self.where)
        if iters > MAX_ITERS:
            raise LimitExceeded("%s: %d PBKDF2 iterations (more than %d)" % (self.where, iters, MAX_ITERS), "pbkdf2")
        salt = struct.pack("<Q", _int(root.get("pbkdf2salt"), "pbkdf2salt", self.where))
        return p.pbkdf2("sha1", secret.split(b"\n")[0], salt, iters, 32)

    def _block_key(self, salt):
        got = self._keys.get(salt)
        if got is None:
            got = self.p.hkdf_sha512(self.master, None, salt, self.keylen)
            if len(self._keys) > 64:
                self._keys.clear()
            self._keys[salt] = got
        return got

    def decrypt(self, bp, raw):
        """The plaintext (still compressed) of an encrypted block read as `raw`; Corrupt when its MAC fails."""
        key = self._block_key(bp.salt)
        if bp.type == OT_DNODE:
            return self._dnode_block(key, bp, raw)
        out = self.p.aead_decrypt(self.mode, key, bp.iv, raw, bp.mac, b"")
        if out is None:
            raise Corrupt("%s: encrypted block fails its MAC" % self.where, "ZFS encrypted block")
        return out

    def _dnode_block(self, key, bp, raw):
        buf = bytearray(raw)
        aad, ct, spans = bytearray(), bytearray(), []
        i, n = 0, len(buf) // 512
        while i < n:
            d = i * 512
            dtype, nblk, bonustype, flags = buf[d], buf[d + 3], buf[d + 4], buf[d + 7]
            bonuslen = struct.unpack_from("<H", buf, d + 10)[0]
            size = 512 * (1 + buf[d + 12])
            if d + size > len(buf) or 64 + 128 * nblk > size:
                raise Corrupt("%s: dnode %d of an encrypted block overruns it" % (self.where, i), "ZFS dnode")
            core = bytearray(buf[d:d + 64])
            core[7] &= 4  # only the spill flag is portable
            core[24:32] = bytes(8)  # dn_used is not
            aad += core
            for j in range(nblk):
                aad += self._bp_auth(buf, d + 64 + 128 * j)
            end = d + size
            if flags & 4:
                aad += self._bp_auth(buf, d + size - 128)
                end -= 128
            start = d + 64 + 128 * nblk
            if dtype and is_encrypted_type(bonustype) and bonuslen:
                spans.append((start, end))
                ct += buf[start:end]
            else:
                aad += buf[start:end]
            i += 1 + buf[d + 12]
        if not spans:
            return bytes(buf)
        out = self.p.aead_decrypt(self.mode, key, bp.iv, bytes(ct), bp.mac, bytes(aad))
        if out is None:
            raise Corrupt("%s: dnode block fails its MAC" % self.where, "ZFS encrypted dnode block")
        pos = 0
        for a, b in spans:
            buf[a:b] = out[pos:pos + b - a]
            pos += b - a
        return bytes(buf)

    def _bp_auth(self, buf, at):
        """A block pointer as authenticated: its portable blk_prop bits, its MAC and (version >= 1) padding."""
        w = struct.unpack_from("<16Q", buf, at)
        prop = w[6]
        mac = bytes(buf[at + 112:at + 128]) if (prop >> 48 & 0xFF) != OT_OBJSET else bytes(16)
        hole = not (prop >> 39 & 1) and not w[0] and not w[1]
        if self.version == 0:
            prop &= ~((1 << 62) | (0xFF << 40) | (0xFFFF << 16))  # dedup, checksum, psize (512 bytes: 0)
            return struct.pack("<Q", prop) + mac
        if hole:
            prop = 0
        else:
            if prop >> 56 & 0x1F:  # above level 0: byte order, compression and psize are not portable
                prop &= ~((1 << 63) | (0x7F << 32) | (0xFFFF << 16))
            prop &= ~((1 << 62) | (0xFF << 40))
        return struct.pack("<Q", prop) + mac + bytes(8)
