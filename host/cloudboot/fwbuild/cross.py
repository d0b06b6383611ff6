"""Per-arch facts for cross-compiling freestanding UEFI code with `zig cc` (see TOOLCHAIN-NOTES §1, §5)."""

from __future__ import annotations

from dataclasses import dataclass

from cloudboot.errors import CloudBootError


@dataclass(frozen=True)
class Target:
    """One UEFI architecture: zig target, its extra flags, the PE machine and the removable-media file name."""

    arch: str
    zig_target: str
    cflags: tuple[str, ...]
    pe_machine: int
    efi_name: str


TARGETS: dict[str, Target] = {
    "x86_64": Target("x86_64", "x86_64-linux-none", ("-mno-red-zone",), 0x8664, "BOOTX64.EFI"),
    "aarch64": Target("aarch64", "aarch64-linux-none", ("-mstrict-align",), 0xAA64, "BOOTAA64.EFI"),
    "riscv64": Target("riscv64", "riscv64-linux-none", (), 0x5064,
                      "BOOTRISCV64.EFI"),
    # LSX/LASX trap (#SXD) in UEFI context: the firmware does not enable the vector units.
    "loongarch64": Target("loongarch64", "loongarch64-linux-none", ("-mno-lsx", "-mno-lasx"), 0x6264,
                          "BOOTLOONGARCH64.EFI"),
}

#: Common flags for freestanding PIE code that firmware relocates (ELF static-pie, later PE32+).
BASE_CFLAGS = ("-ffreestanding", "-fno-stack-protector", "-fshort-wchar", "-fPIE", "-fno-builtin",
               "-fvisibility=hidden", "-fdata-sections", "-ffunction-sections", "-fno-asynchronous-unwind-tables")
BASE_LDFLAGS = ("-nostartfiles", "-static-pie", "-Wl,--entry=efi_main", "-Wl,-z,max-page-size=4096",
                "-Wl,--gc-sections")


def target(arch: str) -> Target:
    """The Target for arch, or an error naming the supported ones."""
    try:
        return TARGETS[arch]
    except KeyError:
        raise CloudBootError(f"unsupported arch {arch!r}; supported: {', '.join(TARGETS)}") from None


def arches(spec: str) -> list[Target]:
    """`all` or a comma-separated list of arch names -> Targets."""
    if spec == "all":
        return list(TARGETS.values())
    return [target(a.strip()) for a in spec.split(",") if a.strip()]
