"""Flags for cross-compiling freestanding UEFI code with `zig cc` (see TOOLCHAIN-NOTES §1, §5); the per-arch
target and flags are the `arches` table's `zig_target` and `cflags`."""

#: Common flags for freestanding PIE code that firmware relocates (ELF static-pie, later PE32+).
BASE_CFLAGS = ("-ffreestanding", "-fno-stack-protector", "-fshort-wchar", "-fPIE", "-fno-builtin",
               "-fvisibility=hidden", "-fdata-sections", "-ffunction-sections", "-fno-asynchronous-unwind-tables")
BASE_LDFLAGS = ("-nostartfiles", "-static-pie", "-Wl,--entry=efi_main", "-Wl,-z,max-page-size=4096",
                "-Wl,--gc-sections")
