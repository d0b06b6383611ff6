"""The kernel command line as init reads it, with the original's tokenizer semantics (REFERENCE.md §1).

Tokens are split on space, tab and newline; double quotes group characters (spaces included) and are
removed wherever they appear (`ip="dhcp,ipv4"` -> `ip=dhcp,ipv4`, `"c=d e"` -> `c=d e`); an unterminated
quote runs to the end. Each token splits at its first `=`; a bare word has the value "1"; a later duplicate
overwrites an earlier one. Every `cloudboot.*` value init understands is checked up front, so a typo fails
at once with the key, the value and what is allowed, never half-way through a boot.
"""

from __future__ import annotations

import re

from cloudboot.init.errors import InitError


def split(text: str) -> list[str]:
    """Tokens of a command line (the original's splitCmdline)."""
    out: list[str] = []
    cur: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        elif ch in " \t\n" and not quoted:
            if cur:
                out.append("".join(cur))
                cur = []
        else:
            cur.append(ch)
    if cur:
        out.append("".join(cur))
    return out


def parse(text: str) -> dict[str, str]:
    """key -> value for every token (bare words -> "1"; the last duplicate wins)."""
    out: dict[str, str] = {}
    for tok in split(text):
        key, eq, value = tok.partition("=")
        out[key] = value if eq else "1"
    return out


_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def duration(text: str) -> float:
    """Seconds in a Go duration (`5s`, `1m30s`, `250ms`) or a bare number of seconds; ValueError otherwise."""
    text = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    pos, total = 0, 0.0
    if not text:
        raise ValueError("empty duration")
    while pos < len(text):
        m = _DURATION_PART.match(text, pos)
        if not m:
            raise ValueError(f"{text!r} is not a duration (like 5s, 1m30s, 250ms or seconds)")
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    return total


def _choice(*allowed: str):
    def check(value: str) -> None:
        if value not in allowed:
            raise ValueError(f"want one of {', '.join(repr(a) for a in allowed)}")
    return check


def _abs_path(value: str) -> None:
    if not value.startswith("/"):
        raise ValueError("want an absolute path inside the filesystem (starting with /)")


def _duration(value: str) -> None:
    if duration(value) < 0:
        raise ValueError("a duration cannot be negative")


def _lldp_wait(value: str) -> None:
    duration(value[1:] if value.startswith("-") else value)  # <= 0 turns listening off


def _device(value: str) -> None:
    if not value:
        raise ValueError("empty device")
    if value.startswith("/"):
        return
    kind, eq, want = value.partition("=")
    if eq and kind in ("LABEL", "UUID", "PARTLABEL", "PARTUUID"):
        if not want:
            raise ValueError(f"{kind}= needs a value")
        return
    if "=" not in value and "/" in value.strip("/"):
        return  # <pool>/<dataset> for ZFS
    raise ValueError("want /dev/..., LABEL=, UUID=, PARTLABEL=, PARTUUID= or <pool>/<dataset>")


def _nonempty(value: str) -> None:
    if not value:
        raise ValueError("empty value")


def _anything(value: str) -> None:
    pass


def _keymap(value: str) -> None:
    from cloudboot.init.keymap import check

    check(value)


def _bootnum(value: str) -> None:
    if len(value) != 4 or any(c not in "0123456789abcdefABCDEF" for c in value):
        raise ValueError("want a boot entry number as 4 hex digits (0001)")


#: Every cloudboot.* key init knows, with its check. Keys from REFERENCE.md §1.1, plus ours:
#: cloudboot.disk.wait (how long to wait for the disk to appear), and for Path C (cloudboot.exit=reboot)
#: cloudboot.reboot.next=1 (BootNext: boot the target once), .bootnum=XXXX (the Boot#### to write),
#: .pause=<duration> (wait between the staged files and the boot entry: power-cut drills).
KEYS = {
    "cloudboot.exit": _choice("kexec", "reboot"),
    "cloudboot.disk": _device,
    "cloudboot.disk.fs": _choice("ext4", "xfs", "btrfs", "zfs"),
    "cloudboot.disk.kernel": _abs_path,
    "cloudboot.disk.initrd": _abs_path,
    "cloudboot.disk.luks-passphrase": _anything,
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
    "cloudboot.keymap": _keymap,
    "cloudboot.reboot.next": _choice("0", "1"),
    "cloudboot.reboot.bootnum": _bootnum,
    "cloudboot.reboot.pause": _duration,
    "cloudboot.openstack.auth-url": _nonempty,
    "cloudboot.openstack.app-cred-id": _nonempty,
    "cloudboot.openstack.app-cred-secret": _nonempty,
}


def check(cmd: dict[str, str]) -> list[str]:
    """Raise InitError for the first malformed known value; return warnings for unknown cloudboot.* keys."""
    warnings = []
    for key in sorted(cmd):
        if not key.startswith("cloudboot."):
            continue
        checker = KEYS.get(key)
        if checker is None:
            warnings.append(f"unknown key {key}={cmd[key]!r} ignored")
            continue
        try:
            checker(cmd[key])
        except ValueError as exc:
            raise InitError(f"bad kernel command line value {key}={cmd[key]!r}: {exc}") from None
    return warnings


def read(path: str = "/proc/cmdline") -> dict[str, str]:
    """Parse the running kernel's command line."""
    with open(path, encoding="utf-8", errors="replace") as f:
        return parse(f.read())
