"""The raw-REPL driver against scripted devices that speak MicroPython's protocol byte by byte (no QEMU):
raw paste with its flow-control window, the fallback to plain raw mode, framing, errors, aborts."""

from __future__ import annotations

import re

import pytest

from cloudboot.errors import CloudBootError
from cloudboot.harness.machine import HarnessTimeout, Machine
from cloudboot.harness.repl import FirmwareError, Repl, parse_reply

RAW_PROMPT = b"raw REPL; CTRL-B to exit\r\n>"


class _Running:
    """Stands in for the QEMU process: still running until killed."""

    returncode = None

    def poll(self) -> int | None:
        return self.returncode

    def kill(self) -> None:
        self.returncode = -9

    def wait(self, timeout: float | None = None) -> int:
        return self.returncode


class Device:
    """MicroPython's raw REPL as pyexec.c implements it: `paste` says whether Ctrl-E A is understood
    (True), refused with R\\x00 (False) or unknown to an old REPL (None). `run(code)` -> (stdout, stderr)."""

    def __init__(self, run, paste: bool | None = True, window: int = 128) -> None:
        self.run, self.paste, self.window = run, paste, window
        self.line = b""
        self.pasting = False
        self.remain = 0
        self.taken = 0  # bytes of code consumed in the current paste
        self.abort_after: int | None = None  # raw paste: stop reading after so many bytes (a syntax error)
        self.draining = False
        # The host promises never to have more than one window unacknowledged: it may send one window, plus
        # one more for each \x01 after the opening one (pyexec.c itself would allow a window more).
        self.allowed = self.limit = 0

    def feed(self, data: bytes) -> bytes:
        """One write from the host: the \\x01 credits it causes cannot have been seen by the host yet."""
        self.limit = self.allowed
        out = b""
        for c in data:
            out += self._byte(bytes([c]))
        return out

    def _byte(self, c: bytes) -> bytes:
        if self.draining:
            if c in (b"\x03", b"\x04"):
                self.draining = False
                return b"\x04" + b"Traceback (most recent call last):\r\nSyntaxError: invalid syntax\r\n\x04>"
            return b""
        if self.pasting:
            if c == b"\x04":
                self.pasting = False
                stdout, stderr = self.run(self.line.decode())
                return b"\x04" + stdout + b"\x04" + stderr + b"\x04>"
            self.line += c
            self.taken += 1
            assert self.taken <= self.limit, f"host sent byte {self.taken} of code with {self.limit} allowed"
            if self.abort_after is not None and self.taken >= self.abort_after:
                self.pasting, self.draining = False, True
                return b"\x04"
            self.remain -= 1
            if self.remain == 0:
                self.remain = self.window
                self.allowed += self.window
                return b"\x01"
            return b""
        if c == b"\x01":
            if self.line[:1] == b"\x05" and len(self.line) == 2 and self.paste is not None:
                self.line = b""
                if not self.paste:
                    return b"R\x00>"
                self.pasting, self.remain, self.taken, self.allowed = True, self.window, 0, self.window
                return b"R\x01" + self.window.to_bytes(2, "little") + b"\x01"
            self.line = b""
            return RAW_PROMPT
        if c == b"\x04":
            code, self.line = self.line.decode(), b""
            stdout, stderr = self.run(code)
            return b"OK" + stdout + b"\x04" + stderr + b"\x04>"
        if c == b"\x03":
            self.line = b""
            return b""
        self.line += c
        return b""


class FakeMachine(Machine):
    """A Machine whose serial line is connected to a Device instead of QEMU."""

    def __init__(self, device: Device) -> None:
        super().__init__("x86_64")
        self.device = device
        self.proc = _Running()
        self.raw += b"cloud-boot firmware 0.1.0 (MicroPython 1.25.0) x86_64\r\n>>> "

    def send(self, data: bytes | str, timeout: float = 60) -> None:
        if isinstance(data, str):
            data = data.encode()
        reply = self.device.feed(data)
        with self._cond:
            self.raw += reply

    def expect(self, pattern, timeout: float = 60, mark: str | None = None) -> re.Match:
        # Nothing arrives later from a scripted device: fail at once instead of waiting out the timeout.
        return super().expect(pattern, 0.01, mark)


def _python(code: str) -> tuple[bytes, bytes]:
    """Runs the tiny subset the tests send: print(<int expression>) lines, or raise."""
    out = b""
    for line in code.splitlines():
        if line.startswith("raise "):
            return out, f"Traceback (most recent call last):\r\n  File \"<stdin>\"\r\n{line[6:]}: boom\r\n".encode()
        if line.startswith("print("):
            out += str(eval(line[6:-1], {})).encode() + b"\r\n"  # noqa: S307 - canned test input
    return out, b""


def test_raw_paste_moves_large_code_one_window_at_a_time() -> None:
    device = Device(_python, window=32)
    code = "\n".join(f"print({i} * 3)" for i in range(200))  # ~2.5 KB: about 80 windows
    repl = Repl(FakeMachine(device))
    out = repl.exec(code)
    assert out.split() == [str(i * 3) for i in range(200)]
    assert repl.raw_paste is True
    assert device.line.decode() == code  # every byte arrived, in order
    assert repl.exec("print(6*7)") == "42\n"  # and the REPL is ready for the next


def test_exception_comes_back_with_type_and_traceback() -> None:
    repl = Repl(FakeMachine(Device(_python)))
    with pytest.raises(FirmwareError) as info:
        repl.exec("print(1)\nraise ValueError")
    assert info.value.exc_type == "ValueError"
    assert "ValueError: boom" in info.value.traceback


@pytest.mark.parametrize("paste", [False, None], ids=["refused", "old-repl"])
def test_plain_raw_mode_when_raw_paste_is_not_offered(paste: bool | None) -> None:
    device = Device(_python, paste=paste)
    repl = Repl(FakeMachine(device))
    code = "\n".join(f"print({i} + 1)" for i in range(100))
    assert repl.exec(code).split() == [str(i + 1) for i in range(100)]
    assert repl.raw_paste is False
    assert repl.exec("print(2 ** 10)") == "1024\n"  # no second Ctrl-E attempt: plain mode straight away


def test_firmware_that_stops_reading_mid_paste_still_gives_its_error() -> None:
    device = Device(_python, window=16)
    device.abort_after = 40
    repl = Repl(FakeMachine(device))
    with pytest.raises(FirmwareError, match="SyntaxError"):
        repl.exec("print(1)\n" * 30)


def test_non_ascii_code_is_sent_as_ascii_hex() -> None:
    seen: list[str] = []

    def run(code: str) -> tuple[bytes, bytes]:
        seen.append(code)
        return "é\r\n".encode(), b""

    repl = Repl(FakeMachine(Device(run)))
    assert repl.exec("print('é')") == "é\n"
    assert seen[0].isascii() and "print('é')".encode().hex() in seen[0]


def test_control_characters_are_refused() -> None:
    repl = Repl(FakeMachine(Device(_python)))
    with pytest.raises(CloudBootError, match="must not contain Ctrl-C or Ctrl-D"):
        repl.exec("print('\x04')")


def test_silent_firmware_times_out_with_the_transcript() -> None:
    repl = Repl(FakeMachine(Device(lambda code: (b"", b""), window=8)))
    repl.m.device.feed = lambda data: b""  # takes the code and never answers
    repl.raw_mode = True
    with pytest.raises(HarnessTimeout, match="cloud-boot firmware 0.1.0"):
        repl.exec("print(1)")


def test_parse_reply_splits_stdout_and_stderr() -> None:
    assert parse_reply(b"a\r\nb\r\n\x04\x04") == ("a\nb\n", "")
    assert parse_reply(b"\x04Traceback\r\nOSError: 5\r\n\x04") == ("", "Traceback\nOSError: 5\n")
    with pytest.raises(CloudBootError, match="not framed"):
        parse_reply(b"a\r\n\x04")
