"""Per-arch QEMU machine profiles: machine, CPU, memory, the removable-media file name, the PE machine."""

from __future__ import annotations

from dataclasses import dataclass

from cloudboot.errors import CloudBootError


@dataclass(frozen=True)
class Profile:
    """How to run one UEFI architecture under QEMU + EDK2."""

    arch: str
    qemu: str
    machine: str
    cpu: tuple[str, ...]
    memory_mb: int
    efi_name: str
    pe_machine: int
    linux_console: str
    #: Machine options a Linux kernel booted in this VM needs (appended to `machine` when `linux` is asked).
    linux_options: str = ""

    def machine_arg(self, linux: bool = True) -> str:
        """The `-M` value; `linux` adds the options Linux kernels need (riscv64: `acpi=off`)."""
        return f"{self.machine},{self.linux_options}" if linux and self.linux_options else self.machine


PROFILES = {
    "x86_64": Profile("x86_64", "qemu-system-x86_64", "q35", (), 1024, "BOOTX64.EFI", 0x8664, "ttyS0"),
    "aarch64": Profile("aarch64", "qemu-system-aarch64", "virt", ("-cpu", "cortex-a57"), 1024, "BOOTAA64.EFI",
                       0xAA64, "ttyAMA0"),
    # riscv64 Linux needs ACPI off (its EFI stub otherwise generates an empty DTB and resets).
    "riscv64": Profile("riscv64", "qemu-system-riscv64", "virt", (), 1024, "BOOTRISCV64.EFI", 0x5064,
                       "ttyS0", "acpi=off"),
    "loongarch64": Profile("loongarch64", "qemu-system-loongarch64", "virt", ("-cpu", "la464"), 1024,
                           "BOOTLOONGARCH64.EFI", 0x6264, "ttyS0"),
}
ALIASES = {"amd64": "x86_64", "arm64": "aarch64", "loong64": "loongarch64"}


def profile(arch: str) -> Profile:
    """The profile for arch (Debian names amd64/arm64/loong64 accepted), or an error naming the supported ones."""
    try:
        return PROFILES[ALIASES.get(arch, arch)]
    except KeyError:
        raise CloudBootError(f"unsupported arch {arch!r}; supported: {', '.join(PROFILES)}") from None
