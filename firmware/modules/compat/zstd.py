"""Zstandard (RFC 8878) decompressor, portable: runs unchanged on MicroPython and CPython.

    decompress(data, max_output=None, check=True, single=False) -> bytes
    decompress_bytearray(...same...) -> bytearray   (no final copy; for tens of MB kernels)

All frames are decoded and concatenated, skippable frames skipped, the Content_Checksum (XXH64) verified
when present. Dictionaries are not supported (a frame naming one is an error). Any malformed input raises
ZstdError (a ValueError) naming what is wrong and the input byte offset; the output never grows beyond
max_output (when given).

Speed notes (the hot loops are the Huffman literal decoder and the sequence loop): backward bitstreams are
unpacked into 32-bit words once per stream and read through a small integer bit container (at most 62
bits, so it stays a small int on 64-bit MicroPython); FSE and Huffman decoding are table lookups; matches
are bytearray slice copies into a preallocated output buffer. Measured on a 30 MB `zstd -19` binary (x86-64
host, bench/bench_zstd.py): CPython 3.11 ~7.4 MB/s, MicroPython 1.25 unix port ~3.6 MB/s (~5 MB/s with
check=False); `zstd -d` ~300 MB/s.

In the firmware each frame goes to the `_libzstd` module instead (libzstd's decoder in C, see
firmware/uefi_port/modzstd.c): the Python decoder runs at ~0.1 MB/s under QEMU TCG. The frame loop, limits and
errors stay here, so callers see the same behaviour on every runtime."""

import struct
import sys

from compat.xxhash import xxh64

try:
    import _libzstd as _zstd  # only in the firmware (not CPython 3.14's `_zstd`, whose API differs)
except ImportError:
    _zstd = None

_MPY = sys.implementation.name == "micropython"


class ZstdError(ValueError):
    pass


def _err(what, pos):
    return ZstdError("zstd: %s at byte %d" % (what, pos))


_MAGIC = 0xFD2FB528
_BLOCK_MAX = 128 * 1024
_M = [(1 << k) - 1 for k in range(65)]

# Literals_Length and Match_Length codes: (baseline, extra bits), RFC 8878 section 3.1.1.3.2.1.
_LL_BASE = list(range(16)) + [16, 18, 20, 22, 24, 28, 32, 40, 48, 64, 128, 256, 512, 1024, 2048, 4096,
                              8192, 16384, 32768, 65536]
_LL_BITS = [0] * 16 + [1, 1, 1, 1, 2, 2, 3, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]
_ML_BASE = list(range(3, 35)) + [35, 37, 39, 41, 43, 47, 51, 59, 67, 83, 99, 131, 259, 515, 1027, 2051,
                                 4099, 8195, 16387, 32771, 65539]
_ML_BITS = [0] * 32 + [1, 1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]

# Predefined distributions, RFC 8878 section 3.1.1.3.2.2.
_LL_DEF = ([4, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 2, 1, 1, 1, 1, 1,
            -1, -1, -1, -1], 6)
_ML_DEF = ([1, 4, 3, 2, 2, 2, 2, 2, 2] + [1] * 37 + [-1] * 7, 6)
_OF_DEF = ([1, 1, 1, 1, 1, 1, 2, 2, 2] + [1] * 15 + [-1] * 5, 5)

_LL_MAXSYM, _ML_MAXSYM, _OF_MAXSYM = 35, 52, 31
_LL_MAXAL, _ML_MAXAL, _OF_MAXAL = 9, 9, 8


def _highbit(v):
    """Index of the highest set bit of v >= 1 (no int.bit_length on every MicroPython build)."""
    n = -1
    while v:
        v >>= 1
        n += 1
    return n


_HB = bytearray(_highbit(v) if v else 0 for v in range(1024))  # FSE states: counts < 2 ** 9 * 2


# ---------------------------------------------------------------------------------------------------------
# FSE tables (RFC 8878 section 4.1)


def _read_ncount(data, pos, end, maxsym, maxal, what):
    """Parse an FSE table description at data[pos:end]; returns (normalized counts, accuracy log, new pos)."""

    def peek(bp):
        q = pos + (bp >> 3)
        return int.from_bytes(data[q:min(q + 4, end)], "little") >> (bp & 7)

    if pos >= end:
        raise _err("truncated %s table" % what, pos)
    al = (data[pos] & 15) + 5
    if al > maxal:
        raise _err("bad %s table (accuracy log %d)" % (what, al), pos)
    bp = 4
    remaining = (1 << al) + 1
    threshold = 1 << al
    nbits = al + 1
    norm = []
    prev0 = False
    while remaining > 1:
        if prev0:
            n0 = 0
            while True:
                r = peek(bp) & 3
                bp += 2
                n0 += r
                if r != 3:
                    break
                if n0 > maxsym:
                    break
            if len(norm) + n0 > maxsym + 1:
                raise _err("bad %s table (too many symbols)" % what, pos)
            norm.extend([0] * n0)
        if len(norm) > maxsym:
            raise _err("bad %s table (too many symbols)" % what, pos)
        v = peek(bp)
        mx = 2 * threshold - 1 - remaining
        low = v & (threshold - 1)
        if low < mx:
            count = low
            bp += nbits - 1
        else:
            count = v & (2 * threshold - 1)
            if count >= threshold:
                count -= mx
            bp += nbits
        count -= 1
        remaining -= -count if count < 0 else count
        norm.append(count)
        prev0 = count == 0
        if remaining < 1:
            raise _err("bad %s table (probabilities overflow)" % what, pos)
        while remaining < threshold:
            nbits -= 1
            threshold >>= 1
    if remaining != 1:
        raise _err("bad %s table" % what, pos)
    npos = pos + ((bp + 7) >> 3)
    if npos > end:
        raise _err("truncated %s table" % what, pos)
    return norm, al, npos


def _fse_build(norm, al, what, pos):
    """Decoding table from normalized counts: list of (symbol, nbBits, baseline) per state."""
    size = 1 << al
    syms = [0] * size
    high = size - 1
    nxt = [0] * len(norm)
    total = 0
    for s in range(len(norm)):
        p = norm[s]
        if p == -1:
            syms[high] = s
            high -= 1
            nxt[s] = 1
            total += 1
        else:
            nxt[s] = p
            total += p
    if total != size:
        raise _err("bad %s table" % what, pos)
    step = (size >> 1) + (size >> 3) + 3
    mask = size - 1
    q = 0
    for s in range(len(norm)):
        for _ in range(norm[s]):
            syms[q] = s
            q = (q + step) & mask
            while q > high:
                q = (q + step) & mask
    if q != 0:
        raise _err("bad %s table" % what, pos)
    table = []
    for u in range(size):
        s = syms[u]
        x = nxt[s]
        nxt[s] = x + 1
        nb = al - _HB[x]
        table.append((s, nb, (x << nb) - size))
    return table


def _seq_table(ftable, kind):
    """Sequence decoding table: per state a tuple ready for the hot loop."""
    out = []
    if kind == 0:  # literal lengths / match lengths: (base, extra bits, extra mask, nb, nb mask, baseline)
        for s, nb, bl in ftable:
            x = _LL_BITS[s]
            out.append((_LL_BASE[s], x, _M[x], nb, _M[nb], bl))
    elif kind == 1:
        for s, nb, bl in ftable:
            x = _ML_BITS[s]
            out.append((_ML_BASE[s], x, _M[x], nb, _M[nb], bl))
    else:  # offsets: (code, 1 << code, nb, nb mask, baseline)
        for s, nb, bl in ftable:
            out.append((s, 1 << s, nb, _M[nb], bl))
    return out


_PREDEF = []


def _predefined():
    if not _PREDEF:
        _PREDEF.append(_seq_table(_fse_build(_LL_DEF[0], _LL_DEF[1], "predefined", 0), 0))
        _PREDEF.append(_seq_table(_fse_build(_OF_DEF[0], _OF_DEF[1], "predefined", 0), 2))
        _PREDEF.append(_seq_table(_fse_build(_ML_DEF[0], _ML_DEF[1], "predefined", 0), 1))
    return _PREDEF


# ---------------------------------------------------------------------------------------------------------
# Backward bitstreams


class _Back:
    """A backward bitstream over data[s:e]: words W (zero-padded by 64 bits below the start), index i of the
    last loaded word, container c holding nb unread bits (above them: garbage, masked on use)."""

    def __init__(self, data, s, e, what):
        n = e - s
        if n <= 0 or data[e - 1] == 0:
            raise _err("bad %s bitstream" % what, e - 1 if n > 0 else s)
        z = (-n) & 3
        buf = bytes(8 + z) + data[s:e]
        k = len(buf) >> 2
        self.W = struct.unpack("<%dI" % k, buf)
        self.i = k - 1
        self.c = self.W[k - 1]
        self.nb = 24 + _highbit(data[e - 1])
        self.zb = (8 + z) * 8
        self.what = what
        self.pos = s

    def read(self, n):
        if self.nb < n:
            self.i -= 1
            if self.i < 0:
                raise _err("overrun in %s bitstream" % self.what, self.pos)
            self.c = ((self.c & _M[self.nb]) << 32) | self.W[self.i]
            self.nb += 32
        self.nb -= n
        return (self.c >> self.nb) & _M[n]

    def left(self):
        """Unread real bits (negative once reads went past the start of the stream)."""
        return self.nb + 32 * self.i - self.zb


# ---------------------------------------------------------------------------------------------------------
# Huffman literals (RFC 8878 section 4.2)


def _huf_weights_fse(data, q, end):
    norm, al, p = _read_ncount(data, q, end, 255, 6, "Huffman weights")
    tab = _fse_build(norm, al, "Huffman weights", q)
    br = _Back(data, p, end, "Huffman weights")
    s1 = br.read(al)
    s2 = br.read(al)
    w = []
    while True:
        if len(w) > 254:
            raise _err("too many Huffman weights", q)
        sym, nb, bl = tab[s1]
        w.append(sym)
        s1 = bl + br.read(nb)
        if br.left() < 0:
            w.append(tab[s2][0])
            break
        sym, nb, bl = tab[s2]
        w.append(sym)
        s2 = bl + br.read(nb)
        if br.left() < 0:
            w.append(tab[s1][0])
            break
    return w


def _huf_table(data, q, end):
    """Parse a Huffman tree description at data[q]; returns ((symbols, lengths, max bits), new pos)."""
    if q >= end:
        raise _err("truncated Huffman tree", q)
    hb = data[q]
    if hb < 128:
        if hb == 0 or q + 1 + hb > end:
            raise _err("bad Huffman tree description", q)
        weights = _huf_weights_fse(data, q + 1, q + 1 + hb)
        npos = q + 1 + hb
    else:
        nw = hb - 127
        npos = q + 1 + ((nw + 1) >> 1)
        if npos > end:
            raise _err("truncated Huffman tree", q)
        weights = []
        for k in range(nw):
            b = data[q + 1 + (k >> 1)]
            weights.append(b & 15 if k & 1 else b >> 4)
    total = 0
    for w in weights:
        if w > 11:
            raise _err("bad Huffman weight", q)
        if w:
            total += 1 << (w - 1)
    if total == 0:
        raise _err("bad Huffman weights", q)
    maxb = _highbit(total) + 1
    if maxb > 11:
        raise _err("Huffman code too long", q)
    rest = (1 << maxb) - total
    lw = _highbit(rest) + 1
    if (1 << (lw - 1)) != rest:
        raise _err("bad Huffman weights (incomplete tree)", q)
    weights.append(lw)
    count = [0] * (maxb + 2)
    for w in weights:
        count[w] += 1
    start = [0] * (maxb + 2)
    acc = 0
    for w in range(1, maxb + 1):
        start[w] = acc
        acc += count[w] << (w - 1)
    size = 1 << maxb
    syms = bytearray(size)
    lens = bytearray(size)
    for s in range(len(weights)):
        w = weights[s]
        if w:
            n = 1 << (w - 1)
            a = start[w]
            syms[a:a + n] = bytes((s,)) * n
            lens[a:a + n] = bytes((maxb + 1 - w,)) * n
            start[w] = a + n
    return (syms, lens, maxb), npos


def _huf_stream(data, s, e, table, out, o, n):
    """Decode n literals from the Huffman stream data[s:e] into out[o:o + n]."""
    syms, lens, maxb = table
    br = _Back(data, s, e, "Huffman")
    W = br.W
    i = br.i
    c = br.c
    nb = br.nb
    M = _M
    mask = M[maxb]
    end = o + n
    while o < end:
        if nb < maxb:
            i -= 1
            if i < 0:
                raise _err("overrun in Huffman stream", s)
            c = ((c & M[nb]) << 32) | W[i]
            nb += 32
        x = (c >> (nb - maxb)) & mask
        out[o] = syms[x]
        nb -= lens[x]
        o += 1
    if nb + 32 * i != br.zb:
        raise _err("bad Huffman stream (not fully consumed)", s)


def _literals(data, p, bend, st):
    """Literals section at data[p:bend]; returns (literals buffer, count, new pos)."""
    b0 = data[p]
    lt = b0 & 3
    sf = (b0 >> 2) & 3
    if lt < 2:
        if sf & 1 == 0:
            regen = b0 >> 3
            hl = 1
        elif sf == 1:
            hl = 2
            regen = (int.from_bytes(data[p:p + 2], "little") >> 4) if p + 2 <= bend else -1
        else:
            hl = 3
            regen = (int.from_bytes(data[p:p + 3], "little") >> 4) if p + 3 <= bend else -1
        if regen < 0:
            raise _err("truncated literals header", p)
        if regen > _BLOCK_MAX:
            raise _err("literals too large", p)
        q = p + hl
        if lt == 0:
            if q + regen > bend:
                raise _err("truncated raw literals", p)
            return data[q:q + regen], regen, q + regen
        if q >= bend:
            raise _err("truncated RLE literals", p)
        return bytes((data[q],)) * regen, regen, q + 1
    if sf == 0:
        nstreams, hl, bits = 1, 3, 10
    elif sf == 1:
        nstreams, hl, bits = 4, 3, 10
    elif sf == 2:
        nstreams, hl, bits = 4, 4, 14
    else:
        nstreams, hl, bits = 4, 5, 18
    if p + hl > bend:
        raise _err("truncated literals header", p)
    h = int.from_bytes(data[p:p + hl], "little")
    regen = (h >> 4) & _M[bits]
    csize = (h >> (4 + bits)) & _M[bits]
    if regen > _BLOCK_MAX:
        raise _err("literals too large", p)
    q = p + hl
    cend = q + csize
    if cend > bend:
        raise _err("truncated compressed literals", p)
    if lt == 2:
        table, q = _huf_table(data, q, cend)
        st[0] = table
    else:
        table = st[0]
        if table is None:
            raise _err("treeless literals without a previous Huffman table", p)
    out = bytearray(regen)
    if nstreams == 1:
        _huf_stream(data, q, cend, table, out, 0, regen)
        return out, regen, cend
    if q + 6 > cend:
        raise _err("truncated Huffman jump table", q)
    s1 = data[q] | (data[q + 1] << 8)
    s2 = data[q + 2] | (data[q + 3] << 8)
    s3 = data[q + 4] | (data[q + 5] << 8)
    a = q + 6
    b = a + s1
    c = b + s2
    d = c + s3
    if d >= cend:
        raise _err("bad Huffman jump table", q)
    per = (regen + 3) >> 2
    last = regen - 3 * per
    if last < 0:
        raise _err("bad literals size for 4 streams", p)
    _huf_stream(data, a, b, table, out, 0, per)
    _huf_stream(data, b, c, table, out, per, per)
    _huf_stream(data, c, d, table, out, 2 * per, per)
    _huf_stream(data, d, cend, table, out, 3 * per, last)
    return out, regen, cend


# ---------------------------------------------------------------------------------------------------------
# Sequences (RFC 8878 section 3.1.1.3.2) and their execution


def _seq_mode(data, p, bend, mode, which, st, slot):
    """One of the three symbol decoding tables; returns (table, accuracy log, new pos)."""
    if which == 0:
        maxsym, maxal, kind, name, dflt = _LL_MAXSYM, _LL_MAXAL, 0, "literal lengths", 0
    elif which == 1:
        maxsym, maxal, kind, name, dflt = _OF_MAXSYM, _OF_MAXAL, 2, "offsets", 1
    else:
        maxsym, maxal, kind, name, dflt = _ML_MAXSYM, _ML_MAXAL, 1, "match lengths", 2
    if mode == 0:
        t = (_predefined()[dflt], 6 if which != 1 else 5)
    elif mode == 1:
        if p >= bend:
            raise _err("truncated %s RLE symbol" % name, p)
        s = data[p]
        if s > maxsym:
            raise _err("bad %s RLE symbol" % name, p)
        t = (_seq_table([(s, 0, 0)], kind), 0)
        p += 1
    elif mode == 2:
        norm, al, np = _read_ncount(data, p, bend, maxsym, maxal, name)
        t = (_seq_table(_fse_build(norm, al, name, p), kind), al)
        p = np
    else:
        t = st[slot]
        if t is None:
            raise _err("repeat %s table without a previous one" % name, p)
    st[slot] = t
    return t, p


def _block(data, p, bend, out, op, lim, fstart, st):
    """Decode the compressed block data[p:bend] into out[op:]; returns the new output position."""
    lits, nlit, p = _literals(data, p, bend, st)
    if p >= bend:
        raise _err("truncated sequences header", p)
    b0 = data[p]
    if b0 < 128:
        nseq = b0
        p += 1
    elif b0 < 255:
        if p + 2 > bend:
            raise _err("truncated sequences header", p)
        nseq = ((b0 - 128) << 8) + data[p + 1]
        p += 2
    else:
        if p + 3 > bend:
            raise _err("truncated sequences header", p)
        nseq = data[p + 1] + (data[p + 2] << 8) + 0x7F00
        p += 3
    lp = 0
    if nseq:
        if p >= bend:
            raise _err("truncated sequences header", p)
        modes = data[p]
        if modes & 3:
            raise _err("reserved bits set in sequence modes", p)
        p += 1
        (LLT, llal), p = _seq_mode(data, p, bend, modes >> 6, 0, st, 1)
        (OFT, ofal), p = _seq_mode(data, p, bend, (modes >> 4) & 3, 1, st, 2)
        (MLT, mlal), p = _seq_mode(data, p, bend, (modes >> 2) & 3, 2, st, 3)
        br = _Back(data, p, bend, "sequences")
        sll = br.read(llal)
        sof = br.read(ofal)
        sml = br.read(mlal)
        W = br.W
        i = br.i
        c = br.c
        nb = br.nb
        M = _M
        r1, r2, r3 = st[4]
        lln = mln = ofn = 0
        # Copy sources: memoryview slices on MicroPython (no intermediate copy, ~10% faster there), plain
        # slices on CPython (faster there). Only same-size slice stores: out is never resized meanwhile.
        outv = memoryview(out) if _MPY else out
        litv = memoryview(lits) if _MPY else lits
        for _ in range(nseq):
            ofc, ofb, ofn, ofm, ofl = OFT[sof]
            mlb, mlx, mlm, mln, mlnm, mll = MLT[sml]
            llb, llx, llm, lln, llnm, lll = LLT[sll]
            if nb < ofc:
                i -= 1
                if i < 0:
                    raise _err("overrun in sequences bitstream", p)
                c = ((c & M[nb]) << 32) | W[i]
                nb += 32
            nb -= ofc
            ov = ofb + ((c >> nb) & (ofb - 1))
            if mlx:
                if nb < mlx:
                    i -= 1
                    if i < 0:
                        raise _err("overrun in sequences bitstream", p)
                    c = ((c & M[nb]) << 32) | W[i]
                    nb += 32
                nb -= mlx
                mlb += (c >> nb) & mlm
            if llx:
                if nb < llx:
                    i -= 1
                    if i < 0:
                        raise _err("overrun in sequences bitstream", p)
                    c = ((c & M[nb]) << 32) | W[i]
                    nb += 32
                nb -= llx
                llb += (c >> nb) & llm
            if nb < 26:
                i -= 1
                if i < 0:
                    raise _err("overrun in sequences bitstream", p)
                c = ((c & M[nb]) << 32) | W[i]
                nb += 32
            nb -= lln
            sll = lll + ((c >> nb) & llnm)
            nb -= mln
            sml = mll + ((c >> nb) & mlnm)
            nb -= ofn
            sof = ofl + ((c >> nb) & ofm)
            if ov > 3:
                r3 = r2
                r2 = r1
                r1 = ov - 3
            else:
                if llb == 0:
                    ov += 1
                if ov == 2:
                    r1, r2 = r2, r1
                elif ov == 3:
                    r1, r2, r3 = r3, r1, r2
                elif ov == 4:
                    r3 = r2
                    r2 = r1
                    r1 -= 1
                    if r1 == 0:
                        raise _err("zero repeat offset", p)
            e = op + llb + mlb
            if e > lim:
                raise _err("block output too large", p)
            if llb:
                if lp + llb > nlit:
                    raise _err("sequence literals overrun", p)
                out[op:op + llb] = litv[lp:lp + llb]
                op += llb
                lp += llb
            src = op - r1
            if src < fstart:
                raise _err("match offset beyond output start", p)
            if r1 >= mlb:
                out[op:e] = outv[src:src + mlb]
            else:
                out[op:e] = (bytes(out[src:op]) * (mlb // r1 + 1))[:mlb]
            op = e
        st[4] = (r1, r2, r3)
        outv = litv = None
        # The last sequence's state update read bits that are not part of the stream: give them back.
        if nb + lln + mln + ofn + 32 * i != br.zb:
            raise _err("bad sequences bitstream (not fully consumed)", p)
    rest = nlit - lp
    if rest:
        if op + rest > lim:
            raise _err("block output too large", p)
        out[op:op + rest] = lits[lp:nlit]
        op += rest
    return op


# ---------------------------------------------------------------------------------------------------------
# Frames


def _grow(out, need, hard):
    n = len(out)
    if need > n:
        want = n * 2
        if want < need:
            want = need
        if want > hard:
            want = hard
        out.extend(bytes(want - n))


def _frame(data, p, out, op, hard_total, check):
    """Decode the frame at data[p:]; returns (new input pos, new output pos)."""
    start = p
    n = len(data)
    if p + 5 > n:
        raise _err("truncated frame header", p)
    fhd = data[p + 4]
    p += 5
    fcs_flag = fhd >> 6
    single = (fhd >> 5) & 1
    if fhd & 8:
        raise _err("reserved frame header bit set", start + 4)
    checksum = (fhd >> 2) & 1
    did_size = (0, 1, 2, 4)[fhd & 3]
    fcs_size = (1 if single else 0, 2, 4, 8)[fcs_flag]
    if p + (0 if single else 1) + did_size + fcs_size > n:
        raise _err("truncated frame header", start)
    window = 0
    if not single:
        wd = data[p]
        base = 1 << (10 + (wd >> 3))
        window = base + (base >> 3) * (wd & 7)
        p += 1
    if did_size:
        did = int.from_bytes(data[p:p + did_size], "little")
        if did:
            raise _err("dictionary %d required (dictionaries are not supported)" % did, p)
        p += did_size
    fcs = -1
    if fcs_size:
        fcs = int.from_bytes(data[p:p + fcs_size], "little")
        if fcs_size == 2:
            fcs += 256
        p += fcs_size
    if single:
        window = fcs
    bms = window if window < _BLOCK_MAX else _BLOCK_MAX
    fstart = op
    hard = hard_total
    if fcs >= 0:
        if fstart + fcs > hard_total:
            raise _err("frame content size %d exceeds max_output" % fcs, start)
        hard = fstart + fcs
        # Preallocate the whole frame, but no more than the input could plausibly produce up front.
        _grow(out, min(hard, fstart + 8 * n + (1 << 20)), hard)
    # st: [Huffman table, LL table, OF table, ML table, repeat offsets]
    st = [None, None, None, None, (1, 4, 8)]
    while True:
        if p + 3 > n:
            raise _err("truncated block header", p)
        bh = data[p] | (data[p + 1] << 8) | (data[p + 2] << 16)
        last = bh & 1
        bt = (bh >> 1) & 3
        bsize = bh >> 3
        bpos = p
        p += 3
        if bt == 3:
            raise _err("reserved block type", bpos)
        if bsize > bms:
            raise _err("block size %d exceeds maximum %d" % (bsize, bms), bpos)
        if bt == 0:
            if p + bsize > n:
                raise _err("truncated raw block", bpos)
            if op + bsize > hard:
                raise _err(_too_big(fcs, hard, hard_total), bpos)
            _grow(out, op + bsize, hard)
            out[op:op + bsize] = data[p:p + bsize]
            op += bsize
            p += bsize
        elif bt == 1:
            if p >= n:
                raise _err("truncated RLE block", bpos)
            if op + bsize > hard:
                raise _err(_too_big(fcs, hard, hard_total), bpos)
            _grow(out, op + bsize, hard)
            out[op:op + bsize] = bytes((data[p],)) * bsize
            op += bsize
            p += 1
        else:
            if p + bsize > n:
                raise _err("truncated compressed block", bpos)
            lim = op + bms
            if lim > hard:
                lim = hard
            _grow(out, lim, hard)
            try:
                nop = _block(data, p, p + bsize, out, op, lim, fstart, st)
            except ZstdError as exc:
                if "block output too large" in str(exc) and lim == hard:
                    raise _err(_too_big(fcs, hard, hard_total), bpos) from None
                raise
            except IndexError:  # defensive: corrupt input caught by an unforeseen path
                raise _err("corrupt compressed block", bpos) from None
            op = nop
            p += bsize
        if last:
            break
    if fcs >= 0 and op - fstart != fcs:
        raise _err("frame content size mismatch (%d, header says %d)" % (op - fstart, fcs), start)
    if checksum:
        if p + 4 > n:
            raise _err("truncated content checksum", p)
        if check:
            want = int.from_bytes(data[p:p + 4], "little")
            got = xxh64(memoryview(out)[fstart:op]) & 0xFFFFFFFF
            if got != want:
                raise _err("content checksum mismatch", p)
        p += 4
    return p, op


def _native_frame(data, p, out, op, hard_total, check):
    """_frame's contract, decoded by libzstd (_zstd): output space is the frame's bound, capped at max_output."""
    try:
        size, bound = _zstd.frame_size(data, p)
    except ValueError as exc:
        raise _err(str(exc), p) from None
    lim = op + bound
    if lim > hard_total:
        lim = hard_total
    _grow(out, lim, lim)
    try:
        n = _zstd.decode(data, p, size, out, op, lim, check)
    except ValueError as exc:
        why = str(exc)
        if lim == hard_total and "too small" in why:
            why = "output exceeds max_output"
        raise _err(why, p) from None
    return p + size, op + n


def _too_big(fcs, hard, hard_total):
    if hard == hard_total:
        return "output exceeds max_output"
    return "output exceeds frame content size %d" % fcs


def decompress_bytearray(data, max_output=None, check=True, single=False):
    """Decompress all frames in data into a new bytearray (see module docstring).

    check=False skips the Content_Checksum (XXH64 is about a third of the time under MicroPython) when the
    caller verifies the output otherwise. single=True decodes only the first zstd frame (after any
    skippable frames) and ignores what follows it: sector padding after a btrfs extent, or the 4-byte size
    the Linux build appends to a compressed kernel."""
    if _zstd is None and not isinstance(data, bytes):
        data = bytes(data)  # the Python decoder slices a lot; libzstd reads any buffer in place (a kernel's pages)
    hard_total = (1 << 62) if max_output is None else max_output
    out = bytearray()
    op = 0
    p = 0
    n = len(data)
    if n == 0:
        raise _err("empty input", 0)
    while p < n:
        if p + 4 > n:
            raise _err("truncated frame magic", p)
        magic = int.from_bytes(data[p:p + 4], "little")
        if magic == _MAGIC:
            if _zstd is None:
                p, op = _frame(data, p, out, op, hard_total, check)
            else:
                p, op = _native_frame(data, p, out, op, hard_total, check)
            if single:
                break
        elif magic & 0xFFFFFFF0 == 0x184D2A50:
            if p + 8 > n:
                raise _err("truncated skippable frame", p)
            size = int.from_bytes(data[p + 4:p + 8], "little")
            if p + 8 + size > n:
                raise _err("truncated skippable frame", p)
            p += 8 + size
        else:
            raise _err("bad frame magic 0x%08x" % magic, p)
    if op != len(out):
        out = out[:op]
    return out


def decompress(data, max_output=None, check=True, single=False):
    """Decompress all frames in data (bytes-like) and return bytes (options: see decompress_bytearray)."""
    return bytes(decompress_bytearray(data, max_output, check, single))
