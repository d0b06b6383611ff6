"""LZO1X decompression in plain Python (btrfs's lzo compression), written from the documented bitstream
(Linux Documentation/staging/lzo.rst), and btrfs's framing of it.

`lzo1x_decompress(src, max_out)` decodes one LZO1X stream; `btrfs_lzo(data, ram_bytes, sectorsize)` decodes a
btrfs lzo extent: a 4-byte total length, then segments of (4-byte length, LZO1X stream), each decoding to at
most one sector, with a segment header never crossing a sector boundary (the rest of the sector is padding).
Bad input raises ValueError (callers turn it into Corrupt); output never grows past `max_out`.
"""


def _count(src, ip, n, base):
    """A run length that continues in zero bytes (255 each) and one non-zero byte: (length, new ip)."""
    zeros = 0
    while True:
        if ip >= n:
            raise ValueError("lzo: input ends inside a run length")
        b = src[ip]
        ip += 1
        if b:
            return base + zeros * 255 + b, ip
        zeros += 1
        if zeros > (1 << 24):
            raise ValueError("lzo: run length too long")


def lzo1x_decompress(src, max_out):
    """The bytes an LZO1X stream decodes to (at most max_out of them)."""
    n = len(src)
    out = bytearray()
    ip = 0
    state = 0
    if n and src[0] > 17:
        t = src[0] - 17
        ip = 1
        if ip + t > n or t > max_out:
            raise ValueError("lzo: first literal run overruns")
        out += src[ip:ip + t]
        ip += t
        state = 4 if t >= 4 else t
    while True:
        if ip >= n:
            raise ValueError("lzo: input ends without an end marker")
        t = src[ip]
        ip += 1
        if t < 16:
            if state == 0:  # a literal run of 4 or more bytes
                if t == 0:
                    t, ip = _count(src, ip, n, 15)
                t += 3
                if ip + t > n or len(out) + t > max_out:
                    raise ValueError("lzo: literal run overruns")
                out += src[ip:ip + t]
                ip += t
                state = 4
                continue
            if ip >= n:
                raise ValueError("lzo: truncated short match")
            if state < 4:  # 2 bytes at distance <= 1 KiB
                dist = (src[ip] << 2) + (t >> 2) + 1
                length = 2
            else:  # 3 bytes at distance 2049..3072
                dist = (src[ip] << 2) + (t >> 2) + 2049
                length = 3
            ip += 1
            nxt = t & 3
        elif t >= 64:
            if ip >= n:
                raise ValueError("lzo: truncated match")
            length = (t >> 5) + 1
            dist = (src[ip] << 3) + ((t >> 2) & 7) + 1
            ip += 1
            nxt = t & 3
        elif t >= 32:
            length = t & 31
            if length == 0:
                length, ip = _count(src, ip, n, 31)
            length += 2
            if ip + 2 > n:
                raise ValueError("lzo: truncated match")
            d = src[ip] | (src[ip + 1] << 8)
            ip += 2
            dist = (d >> 2) + 1
            nxt = d & 3
        else:  # 16..31: distance 16 KiB..48 KiB, or the end of the stream
            length = t & 7
            if length == 0:
                length, ip = _count(src, ip, n, 7)
            length += 2
            if ip + 2 > n:
                raise ValueError("lzo: truncated match")
            d = src[ip] | (src[ip + 1] << 8)
            ip += 2
            dist = ((t & 8) << 11) + (d >> 2)
            nxt = d & 3
            if dist == 0:
                if length != 3:
                    raise ValueError("lzo: bad end marker")
                return bytes(out)
            dist += 0x4000
        olen = len(out)
        if dist > olen:
            raise ValueError("lzo: match distance %d behind %d bytes of output" % (dist, olen))
        if olen + length > max_out:
            raise ValueError("lzo: output larger than %d bytes" % max_out)
        start = olen - dist
        if dist >= length:
            out += out[start:start + length]
        else:  # overlapping: the copied bytes repeat with period dist
            while length > 0:
                k = min(length, dist)
                out += out[start:start + k]
                start += k
                length -= k
        if nxt:
            if ip + nxt > n or len(out) + nxt > max_out:
                raise ValueError("lzo: trailing literals overrun")
            out += src[ip:ip + nxt]
            ip += nxt
        state = nxt


def btrfs_lzo(data, ram_bytes, sectorsize=4096):
    """Decode a btrfs lzo extent (inline or on disk) to at most ram_bytes bytes."""
    n = len(data)
    if n < 4:
        raise ValueError("lzo: extent shorter than its header")
    total = data[0] | (data[1] << 8) | (data[2] << 16) | (data[3] << 24)
    if total > n or total < 4:
        raise ValueError("lzo: extent claims %d bytes, has %d" % (total, n))
    out = bytearray()
    pos = 4
    while pos < total and len(out) < ram_bytes:
        left = sectorsize - pos % sectorsize
        if left < 4:
            pos += left  # a segment header never straddles a sector: padding
            if pos >= total:
                break
        if pos + 4 > total:
            raise ValueError("lzo: truncated segment header at %d" % pos)
        seg = data[pos] | (data[pos + 1] << 8) | (data[pos + 2] << 16) | (data[pos + 3] << 24)
        pos += 4
        if seg == 0 or pos + seg > total:
            raise ValueError("lzo: segment of %d bytes at %d overruns the extent" % (seg, pos - 4))
        out += lzo1x_decompress(memoryview(data)[pos:pos + seg], max(sectorsize, ram_bytes - len(out)))
        pos += seg
    return bytes(out[:ram_bytes])
