"""The `cloudboot.*` command-line grammar, one for the firmware, the init and the host (REFERENCE §1).

Tokens are split on space, tab and newline; double quotes group characters (blanks included) and are
removed wherever they appear (`ip="dhcp,ipv4"` -> `ip=dhcp,ipv4`, `"c=d e"` -> `c=d e`); an unterminated
quote runs to the end. Each token splits at its first `=`; a bare word has the value "1"; a later duplicate
overwrites an earlier one. Durations are Go's (`5s`, `1m30s`, `250ms`, `-1s`) or a bare number of seconds.

`KEYS` is every `cloudboot.*` key the system knows, with its check: the init refuses a malformed value before
it boots anything, the firmware reports it and boots as if the key were absent; both warn about unknown keys.
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


def merge(*texts):
    """parse() of each text, later texts winning (the firmware: LoadOptions, then CloudBootCmdline). Each text
    is tokenized on its own, so an unterminated quote in one cannot swallow the next."""
    out = {}
    for text in texts:
        out.update(parse(text))
    return out


MAX_SECONDS = 9223372036.854775807  # 2**63 - 1 nanoseconds
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
        return _in_range(sign * float(s), text)
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
    return _in_range(sign * total, text)


def _in_range(seconds, text):
    # Go's durations are int64 nanoseconds (about 292 years); this also keeps out float infinity
    if not -MAX_SECONDS <= seconds <= MAX_SECONDS:
        raise ValueError("%r is out of range (a duration is at most about 292 years)" % text)
    return seconds


# ---- the keys and their checks (each raises ValueError saying what is allowed) ----

def _choice(*allowed):
    def check(value):
        if value not in allowed:
            raise ValueError("want one of %s" % ", ".join(repr(a) for a in allowed))
    return check


def _abs_path(value):
    if not value.startswith("/"):
        raise ValueError("want an absolute path inside the filesystem (starting with /)")


def _duration(value):
    if duration(value) < 0:
        raise ValueError("a duration cannot be negative")


def _lldp_wait(value):
    duration(value[1:] if value.startswith("-") else value)  # <= 0 turns listening off


def _device(value):
    if not value:
        raise ValueError("empty device")
    if value.startswith("/"):
        return
    eq = value.find("=")
    if eq >= 0 and value[:eq] in ("LABEL", "UUID", "PARTLABEL", "PARTUUID"):
        if eq == len(value) - 1:
            raise ValueError("%s= needs a value" % value[:eq])
        return
    if eq < 0 and "/" in value.strip("/"):
        return  # <pool>/<dataset> for ZFS
    raise ValueError("want /dev/..., LABEL=, UUID=, PARTLABEL=, PARTUUID= or <pool>/<dataset>")


def _limits(value):
    for item in value.split(","):
        name, eq, number = item.partition("=")
        if not eq or not name or not number.isdigit():
            raise ValueError("want NAME=NUMBER[,NAME=NUMBER...] (e.g. max_memory_kib=8388608)")


def _milliseconds(value):
    if not value or not value.isdigit():
        raise ValueError("want a whole number of milliseconds (0 skips the window)")


def _nonempty(value):
    if not value:
        raise ValueError("empty value")


def _anything(value):
    pass


#: Every cloudboot.* key, with its check. REFERENCE §1.1's keys (read by the init), plus ours:
#: cloudboot.disk.wait (the init: how long to wait for the disk), cloudboot.disk.luks-limits (the init: raise
#: LUKS header limits, diskfs.luks.LIMITS), cloudboot.disk.zfs-passphrase (an encrypted ZFS dataset),
#: cloudboot.repl and cloudboot.wait (the firmware: enter the REPL at once; the REPL key window in milliseconds).
KEYS = {
    "cloudboot.exit": _choice("kexec", "reboot"),
    "cloudboot.disk": _device,
    "cloudboot.disk.fs": _choice("ext4", "xfs", "btrfs", "zfs"),
    "cloudboot.disk.kernel": _abs_path,
    "cloudboot.disk.initrd": _abs_path,
    "cloudboot.disk.luks-passphrase": _anything,
    "cloudboot.disk.luks-limits": _limits,
    "cloudboot.disk.zfs-passphrase": _anything,
    "cloudboot.disk.wait": _duration,
    "cloudboot.plan": _nonempty,
    "cloudboot.image": _nonempty,
    "cloudboot.target": _nonempty,
    "cloudboot.menu": _choice("0", "1"),
    "cloudboot.menu.timeout": _duration,
    "cloudboot.menu.prompt": _anything,
    "cloudboot.cmdline": _anything,
    "cloudboot.insecure": _choice("0", "1"),
    "cloudboot.cosign": _choice("enforce", "warn", "off"),
    "cloudboot.dns": _anything,
    "cloudboot.lldp": _choice("0", "1"),
    "cloudboot.lldp.tx": _choice("0", "1"),
    "cloudboot.lldp.wait": _lldp_wait,
    "cloudboot.lldp.name": _nonempty,
    "cloudboot.metadata.url": _nonempty,
    "cloudboot.metadata.token": _anything,
    "cloudboot.keymap": _choice("", "us", "fr", "fr-mac", "mac-fr"),
    "cloudboot.openstack.auth-url": _nonempty,
    "cloudboot.openstack.app-cred-id": _nonempty,
    "cloudboot.openstack.app-cred-secret": _nonempty,
    "cloudboot.repl": _choice("0", "1"),
    "cloudboot.wait": _milliseconds,
    # The firmware's network boot (Path D): where it sits in the cascade, the DHCP deadline, the per-read timeout.
    "cloudboot.net": _choice("0", "1"),
    "cloudboot.dhcp.timeout": _duration,
    "cloudboot.net.timeout": _duration,
}


def check(cmd):
    """(good, bad, unknown) for a parsed command line: `cmd` without its malformed values; one message per
    malformed value of a known key ("bad kernel command line value k='v': why") and per unknown cloudboot.*
    key ("unknown key k='v' ignored"), each list in key order."""
    good = dict(cmd)
    bad = []
    unknown = []
    for key in sorted(cmd):
        if not key.startswith("cloudboot."):
            continue
        checker = KEYS.get(key)
        if checker is None:
            unknown.append("unknown key %s=%r ignored" % (key, cmd[key]))
            continue
        try:
            checker(cmd[key])
        except ValueError as exc:
            bad.append("bad kernel command line value %s=%r: %s" % (key, cmd[key], exc))
            del good[key]
    return good, bad, unknown
