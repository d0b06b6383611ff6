"""MicroPython's raw REPL over the serial console of a booted firmware.

Protocol: Ctrl-A enters raw mode (`raw REPL; CTRL-B to exit` + `>`). Code is sent in raw-paste mode when the
firmware offers it (Ctrl-E `A` Ctrl-A -> `R\\x01`, a 16-bit window size and `\\x01`; the host sends at most one
window ahead and the firmware sends `\\x01` each time it has consumed another window; Ctrl-D ends the code and
is acknowledged with EOT). Otherwise (`R\\x00`, or an old REPL that just re-enters raw mode) the code goes in
chunks followed by Ctrl-D, acknowledged with `OK`. Either way the reply is then the program's stdout, EOT, the
traceback if it raised, EOT, `>`.

Our firmware sends raw-REPL output straight to the serial port (EOT as 0x04); where it has none it goes
through ConOut, which cannot carry control characters, and EOT arrives as `^D`. Both are accepted.

Measured on QEMU 10 + EDK2 2025.02 (TCG): no input byte is lost even when 13 KB are written at once (the
emulated UARTs back-pressure QEMU's stdio chardev), but ConIn is slow: x86_64 (OVMF's 16550 polling) takes
about 200 bytes/s, loongarch64 1 KB/s, aarch64 and riscv64 2.5 KB/s. Raw paste's flow control lets the
timeout of `exec` mean "no progress for that long" rather than "finished within", whatever the code's size.
"""

from __future__ import annotations

import re

from cloudboot.errors import CloudBootError
from cloudboot.harness.machine import HarnessTimeout, Machine

BANNER = re.compile(rb"cloud-boot firmware \S+ \(MicroPython [0-9.]+\) (\S+)\r?\n")
EOT = re.compile(rb"\x04|\^D")
RAW_PROMPT = b"raw REPL; CTRL-B to exit\r\n>"
#: After Ctrl-E A Ctrl-A: raw paste accepted (window size + first credit), refused, or not understood at all.
_PASTE_REPLY = re.compile(rb"R\x01([\s\S]{2})\x01|R\x00|" + re.escape(RAW_PROMPT))
_CREDIT_OR_END = re.compile(rb"[\x01\x04]")
_REPLY_END = re.compile(rb"(?:\x04|\^D)[\s\S]*?(?:\x04|\^D)>")
#: Chunk size for the plain raw mode (no flow control there).
CHUNK = 256


class FirmwareError(CloudBootError):
    """Code run in the firmware raised; `.exc_type` is the exception's name, `.traceback` its text."""

    def __init__(self, arch: str, traceback: str) -> None:
        self.traceback = traceback.strip()
        last = self.traceback.splitlines()[-1] if self.traceback else "unknown error"
        self.exc_type = last.split(":", 1)[0].strip()
        super().__init__(f"{arch} firmware raised {last}\n{self.traceback}")


def parse_reply(data: bytes) -> tuple[str, str]:
    """(stdout, stderr) from the part of a raw-REPL reply after the acknowledgement: `<stdout>EOT<stderr>EOT`."""
    parts = EOT.split(data, maxsplit=2)
    if len(parts) < 3:
        raise CloudBootError(f"raw REPL reply is not framed by two EOT markers: {data[-200:]!r}")
    out, err = parts[0], parts[1]
    return out.decode("utf-8", "replace").replace("\r\n", "\n"), err.decode("utf-8", "replace").replace("\r\n", "\n")


def parse_response(data: bytes) -> tuple[str, str]:
    """(stdout, stderr) from a plain raw-REPL reply `OK<stdout>EOT<stderr>EOT`."""
    if not data.startswith(b"OK"):
        raise CloudBootError(f"raw REPL did not acknowledge the code: {data[:200]!r}")
    return parse_reply(data[2:])


class Repl:
    """Drives the firmware's REPL: waits for the banner, enters raw mode, runs code."""

    def __init__(self, machine: Machine) -> None:
        self.m = machine
        self.raw_mode = False
        self.raw_paste: bool | None = None  # unknown until the first exec

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
        self.m.expect(RAW_PROMPT, timeout)
        self.raw_mode = True

    def exec(self, code: str, timeout: float = 60) -> str:
        """Run `code` in the firmware; returns its stdout, raises FirmwareError if it raised.

        `timeout` bounds each wait: for every window of code to be taken in, then for the code to finish. On
        a timeout QEMU is killed and HarnessTimeout carries the console transcript."""
        start = self.launch(code, timeout)
        try:
            end = self.m.expect(_REPLY_END, timeout)
        except HarnessTimeout as exc:
            raise HarnessTimeout(f"{self.m.arch}: code did not finish within {timeout:.0f} s\n{exc}") from None
        out, err = parse_reply(end.string[start:end.end() - 1])
        if err.strip():
            raise FirmwareError(self.m.arch, err)
        return out

    def launch(self, code: str, timeout: float = 60) -> int:
        """Send `code` and wait only until the firmware has taken it (for code that does not come back:
        power-off, handing over to a kernel). Returns the transcript offset where its output begins."""
        self.enter(timeout)
        payload = code.encode()
        if b"\x04" in payload or b"\x03" in payload:
            raise CloudBootError("code for the raw REPL must not contain Ctrl-C or Ctrl-D (\\x03, \\x04)")
        if not payload.isascii():
            # EDK2's terminal hands serial bytes >= 0x80 to ConIn one by one as Latin-1 characters, so UTF-8
            # text would arrive double-encoded: send it as hex and let the firmware decode it.
            payload = f"exec(bytes.fromhex('{payload.hex()}').decode())".encode()
        if self.raw_paste is not False:
            self.m.send(b"\x05A\x01")
            reply = self.m.expect(_PASTE_REPLY, timeout)
            self.raw_paste = reply.group(0).startswith(b"R\x01")
            if self.raw_paste:
                return self._paste(payload, int.from_bytes(reply.group(1), "little"), timeout)
        for i in range(0, len(payload), CHUNK):
            self.m.send(payload[i:i + CHUNK], timeout)
        self.m.send(b"\x04", timeout)
        return self.m.expect(b"OK", timeout).end()

    def _paste(self, payload: bytes, window: int, timeout: float) -> int:
        """Raw-paste transfer with never more than one window of code in flight: the firmware grants two
        windows at the start (the size, then `\\x01`); only one is used, so its input buffers never hold more
        than `window` bytes."""
        if window == 0:
            raise CloudBootError(f"{self.m.arch}: raw paste offered a window of 0 bytes")
        sent, credit = 0, window
        while sent < len(payload):
            if credit == 0:
                try:
                    got = self.m.expect(_CREDIT_OR_END, timeout).group(0)
                except HarnessTimeout as exc:
                    raise HarnessTimeout(f"{self.m.arch}: the firmware took {sent} of {len(payload)} bytes of "
                                         f"code, then nothing for {timeout:.0f} s\n{exc}") from None
                if got == b"\x04":
                    # The firmware stopped reading early (a syntax error): it drains our input up to a Ctrl-D,
                    # then replies as usual (empty stdout, EOT, the error, EOT).
                    self.m.send(b"\x04", timeout)
                    return self.m.pos
                credit += window
            chunk = payload[sent:sent + credit]
            self.m.send(chunk, timeout)
            sent += len(chunk)
            credit -= len(chunk)
        self.m.send(b"\x04", timeout)
        return self.m.expect(b"\x04", timeout).end()
