"""WWW-Authenticate parsing (RFC 7235 challenges, quoted-string aware) and Basic credentials."""

import binascii

_TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _skip_ws(s, i):
    while i < len(s) and s[i] in " \t":
        i += 1
    return i


def _token(s, i):
    j = i
    while j < len(s) and s[j] in _TOKEN_CHARS:
        j += 1
    return s[i:j], j


def _quoted(s, i):
    # s[i] == '"'; returns (value, index after closing quote); an unterminated string runs to the end
    out = []
    i += 1
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            out.append(s[i + 1])
            i += 2
            continue
        if c == '"':
            return "".join(out), i + 1
        out.append(c)
        i += 1
    return "".join(out), i


def parse_challenges(header):
    """Every challenge in a WWW-Authenticate value: [(scheme lowercased, {param lowercased: value}), ...].

    Tolerant: junk is skipped, never raised on (the header is untrusted input). A bare token right after
    the scheme is kept as param "" (token68); a bare token after a comma starts the next challenge."""
    s = header if isinstance(header, str) else ""
    out = []
    i = 0
    n = len(s)
    while i < n:
        while i < n and s[i] in ", \t":
            i += 1
        scheme, j = _token(s, i)
        if not scheme:
            i += 1
            continue
        params = {}
        out.append((scheme.lower(), params))
        i = j
        comma = False
        while i < n:
            i = _skip_ws(s, i)
            while i < n and s[i] in ", \t":
                comma = comma or s[i] == ","
                i += 1
            name, j = _token(s, i)
            if not name:
                if i < n:
                    i += 1  # junk character
                continue
            k = _skip_ws(s, j)
            if k < n and s[k] == "=":
                k = _skip_ws(s, k + 1)
                if k < n and s[k] == '"':
                    value, i = _quoted(s, k)
                else:
                    i = k
                    while i < n and s[i] not in ", \t":
                        i += 1
                    value = s[k:i]
                params[name.lower()] = value
                comma = False
            elif not params and not comma:
                params[""] = name  # token68
                i = j
            else:
                break  # the next challenge starts at i
    return out


def bearer_challenge(header):
    """The first Bearer challenge's params (realm, service, scope), or None."""
    for scheme, params in parse_challenges(header):
        if scheme == "bearer":
            return params
    return None


def basic_header(username, password):
    """`Basic base64(user:password)`."""
    raw = ("%s:%s" % (username, password)).encode("utf-8")
    return "Basic " + binascii.b2a_base64(raw).decode().strip()
