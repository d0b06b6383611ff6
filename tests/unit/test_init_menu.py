"""The init's console menu (answered on the serial console or the virtual terminal, whichever types first) and
the keyboard layouts of cloudboot.keymap (the KDSKBENT entries it loads, the original's refusal message)."""

from __future__ import annotations

import os
import socket
import struct
import threading
import time

import pytest

from bootplan.cmdline import KEYMAPS
from cloudboot.init import keymap, menu

ENTRIES = [("debian", "Debian 13"), ("alpine", "Alpine"), ("almalinux", "AlmaLinux")]


@pytest.fixture
def console():
    """A menu Console whose serial input is a pipe and whose VT is a socket pair: returns (console, serial
    writer, the test's end of the VT)."""
    s_r, s_w = os.pipe()
    vt, user = socket.socketpair()
    con = menu.Console(vt.fileno(), in_fd=s_r)
    yield con, s_w, user
    for fd in (s_r, s_w):
        os.close(fd)
    vt.close()
    user.close()


def _ask(con, timeout=0, default="debian"):
    return menu.ask(ENTRIES, default, {"menu": {"timeout": timeout, "prompt": "pick one"}}, con)


def test_answers_by_number_name_prefix_on_either_input(console, capsys) -> None:
    con, serial, vt = console
    os.write(serial, b"2\n")
    assert _ask(con) == "alpine"
    vt.send(b"ALMALINUX\r")  # a VT sends CR; the name is case-insensitive
    assert _ask(con) == "almalinux"
    os.write(serial, b"alp\n")
    assert _ask(con) == "alpine"
    vt.send(b"\n")  # Enter: the default
    assert _ask(con) == "debian"
    out = capsys.readouterr().out
    assert "pick one\n * 1) Debian 13 (debian)\n   2) Alpine (alpine)\n   3) AlmaLinux (almalinux)\n" in out
    assert "choice [debian]: " in out
    assert b" * 1) Debian 13 (debian)\r\n" in vt.recv(65536)  # the VT sees the menu too


def test_wrong_answer_stops_the_countdown(console, capsys) -> None:
    con, serial, vt = console
    os.write(serial, b"a\n")  # ambiguous prefix (alpine, almalinux)
    threading.Timer(1.5, lambda: vt.send(b"3\n")).start()
    started = time.monotonic()
    assert _ask(con, timeout=1) == "almalinux"  # the 1 s countdown stopped at the wrong answer
    assert time.monotonic() - started >= 1.4
    assert "unknown choice 'a'; try again or wait for default 'debian'" in capsys.readouterr().out


def test_countdown_takes_the_default(console, capsys) -> None:
    con, _, _ = console
    assert _ask(con, timeout=1, default="alpine") == "alpine"
    out = capsys.readouterr().out
    assert "booting 'alpine' in 1s - type a choice + Enter to override: " in out and "timeout: booting 'alpine'" in out


def test_console_is_vt(tmp_path) -> None:
    active = tmp_path / "active"
    active.write_text("tty0 ttyS0\n")
    assert not menu.console_is_vt(str(active))  # /dev/console is the last one: serial
    active.write_text("ttyS0 tty0\n")
    assert menu.console_is_vt(str(active))
    assert not menu.console_is_vt(str(tmp_path / "missing"))


def test_keymap_entries() -> None:
    def table(name: str) -> dict[tuple[int, int], int]:
        return {(t, k): v for t, k, v in keymap.entries(name)}

    fr = table("fr")
    assert fr[(keymap.PLAIN, 16)] == 0x0B00 | ord("a")  # the Q key types a, Caps Lock aware
    assert fr[(keymap.SHIFT, 16)] == 0x0B00 | ord("A")
    assert fr[(keymap.PLAIN, 30)] == 0x0B00 | ord("q") and fr[(keymap.PLAIN, 17)] == 0x0B00 | ord("z")
    assert fr[(keymap.PLAIN, 44)] == 0x0B00 | ord("w") and fr[(keymap.PLAIN, 39)] == 0x0B00 | ord("m")
    assert fr[(keymap.PLAIN, 2)] == ord("&") and fr[(keymap.SHIFT, 2)] == ord("1")
    assert fr[(keymap.PLAIN, 3)] == 0xE9 and fr[(keymap.ALTGR, 11)] == ord("@")  # é (Latin-1), AltGr+0 = @
    assert fr[(keymap.ALTGR, 18)] == 0x20AC ^ 0xF000  # AltGr+E = € (a Unicode keysym)
    assert fr[(keymap.PLAIN, 50)] == ord(",") and fr[(keymap.SHIFT, 52)] == ord("/")
    mac = table("fr-mac")
    assert mac == table("mac-fr")
    assert mac[(keymap.PLAIN, 7)] == 0xA7 and mac[(keymap.PLAIN, 13)] == ord("-")  # § on 6, - next to )
    assert mac[(keymap.PLAIN, 53)] == ord("=") and mac[(keymap.PLAIN, 41)] == ord("@")
    assert keymap.entries("us") == [] and keymap.entries("") == []


def test_keymap_check_and_apply() -> None:
    for name in ("", "us", "fr", "fr-mac", "mac-fr"):
        keymap.check(name)
    with pytest.raises(ValueError, match=r'^unsupported keymap "de" \(try: fr, fr-mac, us\)$'):
        keymap.check("de")
    assert set(keymap.LAYOUTS) | {"us"} == set(KEYMAPS)  # the key table's layouts are the ones we can load
    calls = []

    def ioctl(fd, request, arg):
        table, key, value = struct.unpack("BBH", arg)
        if value >= 0x1000:  # as the kernel does when the keyboard is not in Unicode mode
            raise OSError(22, "Invalid argument")
        calls.append((fd, request, table, key, value))

    done = keymap.apply("fr", ioctl=ioctl, vt_fd=7)
    assert done == len(keymap.entries("fr")) - 1 == len(calls)  # all but the € entry
    assert calls[0][:2] == (7, keymap.KDSKBENT)
    assert keymap.apply("us", ioctl=ioctl, vt_fd=7) == 0
