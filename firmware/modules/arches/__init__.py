"""The one table of architectures: every name, number and console each layer spells differently.

Portable (frozen into the firmware, packed into the initramfs, imported by the host). Rows are keyed by the
UEFI/QEMU/kernel name (`x86_64`, `aarch64`, `riscv64`, `loongarch64`); `get` accepts every spelling a user
or a file may use (Go/OCI/Debian `amd64`, `arm64`, `loong64`; UEFI's `x64`, `aa64`) and refuses the rest
with one message.
"""


class ArchError(ValueError):
    """An architecture name that no row knows."""


class Arch:
    """One architecture.

    name: UEFI/QEMU/`uname -m` name; go: Go's and OCI's (`platform.architecture`, plan `arch`); debian: the
    Debian port; efi_suffix: the part of `\\EFI\\BOOT\\BOOT<suffix>.EFI`; pe_machine: PE/COFF Machine;
    elf_machine/elf_relative: ELF e_machine and the R_*_RELATIVE relocation type; qemu/machine/cpu/memory_mb:
    how QEMU runs it; qemu_package/edk2_package: the Debian packages with that QEMU and its EDK2 build;
    linux_console: the serial console Linux names; linux_machine_options: what a Linux guest needs added to
    `-M`; zig_target/cflags: the firmware's C compiler target; kernel_suite: where we take Debian's kernel
    (and the init's packages) for it, kernel_package its metapackage; linux_arch/linux_image: the kernel
    source's ARCH= and the bootable (EFI) image its build makes, for our own kernels (kernel/).
    """

    def __init__(self, name, go, debian, efi_suffix, pe_machine, elf, qemu, machine, cpu, packages,
                 linux_console, zig_target, cflags, kernel_suite, aliases, linux, linux_machine_options="",
                 memory_mb=1024):
        self.name = name
        self.go = go
        self.debian = debian
        self.efi_suffix = efi_suffix
        self.efi_name = "BOOT" + efi_suffix + ".EFI"
        self.pe_machine = pe_machine
        self.elf_machine, self.elf_relative = elf
        self.qemu = qemu
        self.qemu_package, self.edk2_package = packages
        self.machine = machine
        self.cpu = cpu
        self.memory_mb = memory_mb
        self.linux_console = linux_console
        self.linux_machine_options = linux_machine_options
        self.zig_target = zig_target
        self.cflags = cflags
        self.kernel_suite = kernel_suite
        self.kernel_package = "linux-image-" + debian
        self.aliases = aliases
        self.linux_arch, self.linux_image = linux

    def spellings(self):
        """Every name that means this architecture, canonical first."""
        out = [self.name]
        for s in (self.go, self.debian) + self.aliases:
            if s not in out:
                out.append(s)
        return out

    def __repr__(self):
        return "<Arch %s>" % self.name


ARCHES = (
    Arch("x86_64", "amd64", "amd64", "X64", 0x8664, (62, 8), "qemu-system-x86_64", "q35", (),
         ("qemu-system-x86", "ovmf"), "ttyS0", "x86_64-linux-none", ("-mno-red-zone",), "trixie", ("x64",),
         ("x86_64", "arch/x86/boot/bzImage")),
    Arch("aarch64", "arm64", "arm64", "AA64", 0xAA64, (183, 1027), "qemu-system-aarch64", "virt",
         ("-cpu", "cortex-a57"), ("qemu-system-arm", "qemu-efi-aarch64"), "ttyAMA0", "aarch64-linux-none",
         ("-mstrict-align",), "trixie", ("aa64",), ("arm64", "arch/arm64/boot/vmlinuz.efi")),
    # riscv64 Linux needs ACPI off: its EFI stub otherwise generates an empty DTB and the guest resets.
    # Its packages come from sid: trixie's riscv64 index is broken on the archive we use (TOOLCHAIN-NOTES §6).
    Arch("riscv64", "riscv64", "riscv64", "RISCV64", 0x5064, (243, 3), "qemu-system-riscv64", "virt", (),
         ("qemu-system-riscv", "qemu-efi-riscv64"), "ttyS0", "riscv64-linux-none", (), "sid", (),
         ("riscv", "arch/riscv/boot/vmlinuz.efi"), linux_machine_options="acpi=off"),
    # LSX/LASX trap (#SXD) in UEFI context: the firmware does not enable the vector units. Debian's loong64
    # kernel and the init's packages are in sid only.
    Arch("loongarch64", "loong64", "loong64", "LOONGARCH64", 0x6264, (258, 3), "qemu-system-loongarch64", "virt",
         ("-cpu", "la464"), ("qemu-system-misc", "qemu-efi-loongarch64"), "ttyS0", "loongarch64-linux-none",
         ("-mno-lsx", "-mno-lasx"), "sid", (), ("loongarch", "arch/loongarch/boot/vmlinuz.efi")),
)

NAMES = tuple(a.name for a in ARCHES)
_BY_SPELLING = {}
for _a in ARCHES:
    for _s in _a.spellings():
        _BY_SPELLING[_s] = _a


def known():
    """`x86_64 (amd64, x64), ...`: every row with its other spellings, for messages and help texts."""
    parts = []
    for a in ARCHES:
        other = a.spellings()[1:]
        parts.append(a.name + (" (" + ", ".join(other) + ")" if other else ""))
    return ", ".join(parts)


def get(name):
    """The Arch for any of its spellings (case-insensitive, surrounding blanks ignored) or an Arch itself;
    ArchError otherwise."""
    if isinstance(name, Arch):
        return name
    key = (name or "").strip().lower() if isinstance(name, str) else name
    arch = _BY_SPELLING.get(key)
    if arch is None:
        raise ArchError("unknown architecture %r: use one of %s" % (name, known()))
    return arch


def go_name(name):
    """Go's (OCI's, plans') spelling of a known architecture; any other name unchanged (an OCI index may list
    platforms we do not boot, and a plan's own check names a bad `arch` better than we could here)."""
    arch = _BY_SPELLING.get(name.strip().lower()) if isinstance(name, str) else None
    return arch.go if arch else name


def find(field, value):
    """The Arch whose `field` (e.g. `pe_machine`, `elf_machine`) is `value`, or None."""
    for a in ARCHES:
        if getattr(a, field) == value:
            return a
    return None


def by_pe_machine(machine):
    """The Arch whose PE/COFF Machine is `machine`, or None."""
    return find("pe_machine", machine)


def select(spec):
    """`all`, one spelling, or a comma-separated list of spellings (or a list of them) -> Arches, in order,
    without repeats."""
    items = spec if isinstance(spec, (list, tuple)) else [spec]
    out = []
    for item in items:
        for word in str(item).split(","):
            word = word.strip()
            if not word:
                continue
            chosen = list(ARCHES) if word.lower() == "all" else [get(word)]
            for a in chosen:
                if a not in out:
                    out.append(a)
    if not out:
        raise ArchError("no architecture given: use all or one of %s" % known())
    return out
