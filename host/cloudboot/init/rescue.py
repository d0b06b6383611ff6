"""Where every failure ends: `FATAL: <reason>` on the console and a Python prompt instead of a kernel panic.

PID 1 never exits: leaving the prompt (EOF, exit()) prints the reason again and opens a new prompt."""

from __future__ import annotations

import sys
import time

from cloudboot.init.log import PREFIX, log

BANNER = ("cloud-boot rescue: a Python prompt as PID 1. Try: cmd (the command line), reason, "
          "os.listdir('/dev'), open('/proc/modules').read(). Leaving the prompt opens a new one.")


def fatal(reason: str, namespace: dict | None = None, interact=None) -> None:
    """Print the FATAL line and serve rescue prompts forever (returns only if `interact` raises StopIteration:
    tests)."""
    log(f"FATAL: {reason}")
    env = {"reason": reason, "__name__": "__rescue__"}
    env.update(namespace or {})
    try:
        import _sitebuiltins  # exit() and quit(), which `python -S` (init's interpreter flags) leaves out
        import os

        env.setdefault("os", os)
        env.setdefault("exit", _sitebuiltins.Quitter("exit", "Ctrl-D (i.e. EOF)"))
        env.setdefault("quit", _sitebuiltins.Quitter("quit", "Ctrl-D (i.e. EOF)"))
    except ImportError:  # pragma: no cover
        pass
    if interact is None:
        import code

        def interact(banner: str, local: dict) -> None:
            code.interact(banner=banner, local=local, exitmsg="")
    while True:
        started = time.monotonic()
        if sys.stdin is None or sys.stdin.closed:  # exit() closes sys.stdin (fd 0 stays open): a new prompt
            try:                                   # needs a new file object on it
                sys.stdin = open(0, closefd=False)
            except OSError:
                pass
        try:
            interact(BANNER, env)
        except StopIteration:
            return
        except SystemExit:
            pass
        except BaseException as exc:  # noqa: BLE001 - PID 1 must survive anything the prompt does
            try:
                sys.stdout.write(f"{PREFIX}rescue prompt ended: {exc!r}\n")
            except Exception:  # noqa: BLE001
                time.sleep(1)
        if time.monotonic() - started < 2:
            time.sleep(5)  # a console at EOF must not turn into a flood of prompts
        log(f"FATAL: {reason} (PID 1 stays; new rescue prompt)")
