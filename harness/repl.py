"""MicroPython's raw REPL over the serial console of a booted firmware.

Protocol: Ctrl-A enters raw mode (`raw REPL; CTRL-B to exit` + `>`); code then Ctrl-D; the firmware answers
`OK`, the program's stdout, EOT, the traceback if it raised, EOT, `>`. Our firmware sends raw-REPL output
straight to the serial port (EOT as 0x04); where it has none it goes through ConOut, which cannot carry
control characters, and EOT arrives as `^D`. Both are accepted.
"""

from __future__ import annotations

import re

from cloudboot.errors import CloudBootError
from cloudboot.harness.machine import HarnessTimeout, Machine

BANNER = re.compile(rb"cloud-boot firmware \S+ \(MicroPython [0-9.]+\) (\S+)\r?\n")
EOT = re.compile(rb"\x04|\^D")


class FirmwareError(CloudBootError):
    """Code run in the firmware raised; `.exc_type` is the exception's name, `.traceback` its text."""

    def __init__(self, arch: str, traceback: str) -> None:
        self.traceback = traceback.strip()
        last = self.traceback.splitlines()[-1] if self.traceback else "unknown error"
        self.exc_type = last.split(":", 1)[0].strip()
        super().__init__(f"{arch} firmware raised {last}\n{self.traceback}")


def parse_response(data: bytes) -> tuple[str, str]:
    """(stdout, stderr) from a raw-REPL reply `OK<stdout>^D<stderr>^D`."""
    if not data.startswith(b"OK"):
        raise CloudBootError(f"raw REPL did not acknowledge the code: {data[:200]!r}")
    parts = EOT.split(data[2:], maxsplit=2)
    if len(parts) < 3:
        raise CloudBootError(f"raw REPL reply is not framed by two EOT markers: {data[-200:]!r}")
    out, err = parts[0], parts[1]
    return out.decode("utf-8", "replace").replace("\r\n", "\n"), err.decode("utf-8", "replace").replace("\r\n", "\n")


class Repl:
    """Drives the firmware's REPL: waits for the banner, enters raw mode, runs code."""

    def __init__(self, machine: Machine) -> None:
        self.m = machine
        self.raw_mode = False

    def wait_banner(self, timeout: float = 120) -> str:
        """Wait for the firmware banner line; returns it."""
        return self.m.expect(BANNER, timeout, mark="banner").group(0).decode().strip()

    def enter(self, timeout: float = 60) -> None:
        """From anywhere after the banner: into the friendly REPL (pressing a key in the boot window if it
        asks), then raw mode."""
        if self.raw_mode:
            return
        m = self.m.expect(re.compile(rb">>> |press any key for the REPL"), timeout)
        if m.group(0).startswith(b"press"):
            self.m.send(b"\r")
            self.m.expect(b">>> ", timeout)
        self.m.send(b"\r\x03\x03\x01")
        self.m.expect(b"raw REPL; CTRL-B to exit\r\n>", timeout)
        self.raw_mode = True

    def exec(self, code: str, timeout: float = 60) -> str:
        """Run `code` in the firmware; returns its stdout, raises FirmwareError if it raised.

        On timeout QEMU is killed and HarnessTimeout carries the console transcript."""
        self.enter(timeout)
        payload = code.encode()
        if b"\x04" in payload:
            raise CloudBootError("code for the raw REPL must not contain Ctrl-D (\\x04)")
        self.m.send(payload + b"\x04")
        start = self.m.expect(b"OK", timeout)
        try:
            end = self.m.expect(re.compile(rb"(?:" + EOT.pattern + rb")[\s\S]*?(?:" + EOT.pattern + rb")>"), timeout)
        except HarnessTimeout as exc:
            raise HarnessTimeout(f"{self.m.arch}: code did not finish within {timeout:.0f} s\n{exc}") from None
        # end.string is the cleaned transcript; start came from an earlier snapshot of the same prefix.
        out, err = parse_response(b"OK" + end.string[start.end():end.end() - 1])
        if err.strip():
            raise FirmwareError(self.m.arch, err)
        return out
