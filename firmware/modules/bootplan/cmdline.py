"""The `cloudboot.*` command-line grammar, one for the firmware, the init and the host (REFERENCE §1).

Tokens are split on space, tab and newline; double quotes group characters (blanks included) and are
removed wherever they appear (`ip="dhcp,ipv4"` -> `ip=dhcp,ipv4`, `"c=d e"` -> `c=d e`); an unterminated
quote runs to the end. Each token splits at its first `=`; a bare word has the value "1"; a later duplicate
overwrites an earlier one. Durations are Go's (`5s`, `1m30s`, `250ms`, `-1s`) or a bare number of seconds.
"""

_BLANKS = " \t\n"


def split(text):
    """Tokens of a command line (the original's splitCmdline)."""
    out = []
    cur = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in _BLANKS:
            if cur:
                out.append("".join(cur))
                cur = []
        else:
            cur.append(ch)
    if cur:
        out.append("".join(cur))
    return out


def parse(text):
    """key -> value for every token (bare words -> "1"; the last duplicate wins)."""
    out = {}
    for tok in split(text):
        i = tok.find("=")
        if i < 0:
            out[tok] = "1"
        else:
            out[tok[:i]] = tok[i + 1:]
    return out


# Longest unit first, so "ms" is not read as "m" followed by "s".
_UNITS = (("ns", 1e-9), ("us", 1e-6), ("\u00b5s", 1e-6), ("ms", 1e-3), ("s", 1.0), ("m", 60.0), ("h", 3600.0))


def _number_end(text, i):
    j = i
    while j < len(text) and ("0" <= text[j] <= "9" or text[j] == "."):
        j += 1
    return j


def _is_number(text):
    return text != "" and text != "." and text.count(".") <= 1 and _number_end(text, 0) == len(text)


def duration(text):
    """Seconds (a float) in a Go duration (`5s`, `1m30s`, `250ms`, `-2s`) or a bare number of seconds
    (`12`, `1.5`); ValueError naming the text otherwise."""
    s = text.strip()
    sign = 1.0
    if s[:1] in ("-", "+"):
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "":
        raise ValueError("empty duration")
    if _is_number(s):
        return sign * float(s)
    bad = ValueError("%r is not a duration (like 5s, 1m30s, 250ms or a number of seconds)" % text)
    total = 0.0
    i = 0
    while i < len(s):
        j = _number_end(s, i)
        if not _is_number(s[i:j]):
            raise bad
        for unit, scale in _UNITS:
            if s.startswith(unit, j):
                total += float(s[i:j]) * scale
                i = j + len(unit)
                break
        else:
            raise bad
    return sign * total
