"""HTTPS for the firmware's transport: MicroPython's `tls` module (Mbed TLS, TLS 1.2) with the image's `.cacerts`
roots (Debian's ca-certificates and `cloud-boot firmware --ca-file`, as DER), certificates and host names
always verified. Entropy comes from EFI_RNG_PROTOCOL when the firmware has one; otherwise Mbed TLS is fed
CPU-counter jitter, which is weak: the first https connection says which."""

SECTION = ".cacerts"


def roots():
    """The DER certificates of this image's `.cacerts` section (empty when it has none)."""
    from loader import uki
    from uefi import mem

    sections = uki.own_sections()
    if SECTION not in sections:
        return []
    addr, size = sections[SECTION]
    data = mem.read(addr, size)
    out = []
    pos = 0
    while pos + 4 <= len(data) and data[pos] == 0x30:  # SEQUENCE, definite length
        n = data[pos + 1]
        if n < 0x80:
            head, length = 2, n
        else:
            k = n & 0x7F
            head, length = 2 + k, int.from_bytes(data[pos + 2:pos + 2 + k], "big")
        out.append(data[pos:pos + head + length])
        pos += head + length
    return out


def wrapper(opts, log=print):
    """callable(sock, host) -> a TLS socket verified against the roots; None when this build has no `tls`."""
    try:
        import tls
    except ImportError:
        return None
    state = {}

    def wrap(sock, host):
        ctx = state.get("ctx")
        if ctx is None:
            import _uefi  # noqa: F401 (firmware-only: the RNG check below)

            from uefi import core, guid

            certs = roots()
            if not certs:
                raise OSError("https://%s: this firmware image has no %s section (TLS roots)" % (host, SECTION))
            ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
            ctx.verify_mode = tls.CERT_REQUIRED
            for der in certs:
                try:
                    ctx.load_verify_locations(der)  # MicroPython: cadata, positional
                except (ValueError, OSError):
                    pass  # a root Mbed TLS cannot parse (an unsupported curve or key type) is left out
            rng = core.locate_handles(guid.RNG_PROTOCOL)
            log("cloud-boot: tls: %d roots, entropy from %s" % (len(certs), "EFI_RNG_PROTOCOL" if rng else
                                                                 "CPU-counter jitter (no EFI_RNG_PROTOCOL: weak)"))
            state["ctx"] = ctx
        return ctx.wrap_socket(sock, server_hostname=host)

    return wrap
