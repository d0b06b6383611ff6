"""Version-aware ordering of kernel versions and entry names (portable: MicroPython and CPython).

Like rpm/systemd: runs of digits compare as numbers, runs of letters as text, digits sort after letters,
other characters only separate, and '~' sorts before everything (even the end: 6.2~rc1 < 6.2).
"""


def _tokens(text):
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "~":
            out.append((-1, ""))
            i += 1
        elif c.isdigit():
            j = i
            while j < n and text[j].isdigit():
                j += 1
            out.append((2, int(text[i:j])))
            i = j
        elif c.isalpha():
            j = i
            while j < n and text[j].isalpha():
                j += 1
            out.append((1, text[i:j]))
            i = j
        else:
            i += 1
    return out


def compare(a, b):
    """-1, 0 or 1 as version a is older than, equal to or newer than version b."""
    ta, tb = _tokens(a), _tokens(b)
    for x, y in zip(ta, tb):
        if x != y:
            if x[0] != y[0]:
                return -1 if x[0] < y[0] else 1
            return -1 if x[1] < y[1] else 1
    if len(ta) == len(tb):
        return 0
    # The longer one is newer, unless what it has next is a '~' (a pre-release).
    rest = ta[len(tb)] if len(ta) > len(tb) else tb[len(ta)]
    longer_is_a = len(ta) > len(tb)
    newer = rest[0] != -1
    return (1 if newer else -1) if longer_is_a else (-1 if newer else 1)


def newest_first(items, key=lambda x: x):
    """`items` sorted newest version first (a stable insertion sort: lists here are short)."""
    out = []
    for item in items:
        k = key(item)
        pos = 0
        while pos < len(out) and compare(key(out[pos]), k) >= 0:
            pos += 1
        out.insert(pos, item)
    return out
