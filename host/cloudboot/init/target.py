"""The boot target the exit sinks take, whether disk mode or plan mode found it."""

from __future__ import annotations


class Target:
    """Kernel and initrd (or None) written under /run/cloud-boot, the command line to pass, where they came
    from, the name Path C stages them under and the exit sink the plan asks for ("" = the default).

    (A plain class: dataclasses would pull inspect, ast and more into the initramfs and into boot time.)"""

    def __init__(self, kernel: str, initrd: str | None, cmdline: str, description: str, name: str = "disk",
                 exit: str = "") -> None:
        self.kernel, self.initrd, self.cmdline, self.description = kernel, initrd, cmdline, description
        self.name, self.exit = name, exit
