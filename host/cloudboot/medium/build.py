"""`cloud-boot build`: the cloud medium, step by step, with the sizes of what was made.

Per arch: kernel -> initramfs -> UKI (our firmware as the stub + `.linux`, `.initrd`,
`.cmdline`, `.uname`), written to build/medium/<arch>/cloud-boot-<arch>.efi. Then one ESP holding every arch's
firmware as \\EFI\\BOOT\\BOOT<ARCH>.EFI and each UKI as \\EFI\\Linux\\cloud-boot-<arch>.efi (the name each
arch's loader tries first), inside a hybrid ISO (El Torito from CD, GPT partition 2 as a disk).
SOURCE_DATE_EPOCH (else the last commit's time) makes the result bit-identical on rebuild.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cloudboot.kernel.build import build as build_kernel
from cloudboot.medium import parts
from cloudboot.medium.options import Medium
from cloudboot.paths import ROOT, build_dir

#: Each UKI's size budget (the original's kernel + init was about 12 MiB).
UKI_BUDGET_MIB = 20
MIB = 1 << 20


def esp_name(arch_name: str) -> str:
    """Where an arch's UKI sits on the medium's ESP."""
    return f"EFI/Linux/cloud-boot-{arch_name}.efi"


@dataclass
class ArchResult:
    """One arch on the medium: its firmware, and its UKI and the UKI's parts."""

    arch: str
    firmware_size: int
    uki: Path | None = None
    uki_size: int = 0
    kernel: str = ""
    kernel_size: int = 0
    kernel_compressed: bool = False
    initramfs_size: int = 0
    cmdline: str = ""


@dataclass
class Result:
    """What `build` made."""

    output: Path
    size: int
    esp_size: int
    fat_type: int
    epoch: int | None
    epoch_source: str
    arches: list[ArchResult] = field(default_factory=list)
    seconds: float = 0.0

    def over_budget(self) -> list[ArchResult]:
        """The arches whose UKI is over UKI_BUDGET_MIB."""
        return [a for a in self.arches if a.uki_size > UKI_BUDGET_MIB * MIB]

    def as_json(self) -> dict:
        return {"output": str(self.output), "size": self.size, "esp_size": self.esp_size, "fat": self.fat_type,
                "source_date_epoch": self.epoch, "source_date_epoch_from": self.epoch_source,
                "seconds": round(self.seconds, 1),
                "arches": {a.arch: {"firmware_size": a.firmware_size, "uki": str(a.uki), "uki_size": a.uki_size,
                                    "esp_path": "\\" + esp_name(a.arch).replace("/", "\\"), "kernel": a.kernel,
                                    "kernel_size": a.kernel_size, "kernel_zstd": a.kernel_compressed,
                                    "initramfs_size": a.initramfs_size, "cmdline": a.cmdline}
                           for a in self.arches}}


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def build(medium: Medium, say: Callable[[str], None] = _stderr, use_cache: bool = True) -> Result:
    """Build the medium; `say` gets one line per step. `use_cache=False` rebuilds the kernel and initramfs
    pieces too (the Debian packages stay cached)."""
    from cloudboot.image.clock import build_epoch
    from cloudboot.image.iso import build_iso
    from cloudboot.image.output import write_atomic
    from cloudboot.image.uki import UkiParts, build_uki

    started = time.monotonic()
    steps = 3 * len(medium.arches) + 1
    step = 0

    def progress(what: str) -> None:
        nonlocal step
        step += 1
        say(f"[{step}/{steps}] {what} ({time.monotonic() - started:.0f}s)")

    with build_epoch(ROOT) as (epoch, epoch_source):
        say(f"SOURCE_DATE_EPOCH={epoch if epoch is not None else '-'}: {epoch_source}")
        results, efi, extra = [], {}, {}
        for a in medium.arches:
            fw = medium.firmware[a.name].read_bytes()
            efi[f"EFI/BOOT/{a.efi_name}"] = fw
            r = ArchResult(a.name, len(fw))
            results.append(r)
            package = medium.kernel_package.get(a.name)
            own = None
            if medium.kernel == "our":
                progress(f"{a.name}: kernel (ours, cloud variant)")
                own = build_kernel(a.name, "cloud")
            else:
                progress(f"{a.name}: kernel ({package or 'Debian default'})")
            k = parts.kernel(a, package, use_cache, own)
            say(f"  {k.source.name} {k.release}: {k.source.stat().st_size / MIB:.2f} MiB"
                + (f", zstd -{parts.ZSTD_LEVEL} {k.path.stat().st_size / MIB:.2f} MiB" if k.compressed else ""))
            progress(f"{a.name}: initramfs")
            init = parts.initramfs(a, package, medium.cosign_key, medium.cosign_pem, medium.crypto, use_cache, own)
            say(f"  {init.path.name}" + (" (cached)" if init.cached else "") + "\n  "
                + "\n  ".join(init.report.splitlines()[:1]))
            progress(f"{a.name}: UKI")
            uki, names = build_uki(fw, str(medium.firmware[a.name]), UkiParts(
                linux=k.path.read_bytes(), linux_name=str(k.path), initrds=[init.path.read_bytes()],
                cmdline=medium.cmdlines[a.name].encode(), uname=k.release.encode()))
            out = build_dir() / "medium" / a.name / f"cloud-boot-{a.name}.efi"
            out.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(out, uki)
            extra[esp_name(a.name)] = uki
            r.uki, r.uki_size, r.kernel, r.kernel_compressed = out, len(uki), k.release, k.compressed
            r.kernel_size, r.initramfs_size = k.path.stat().st_size, init.path.stat().st_size
            r.cmdline = medium.cmdlines[a.name]
            say(f"  {out}: {len(uki) / MIB:.2f} MiB ({' '.join(names)}); command line: {r.cmdline}")
        progress(f"ESP and hybrid ISO {medium.output}")
        image, layout = build_iso(efi, extra)
        write_atomic(medium.output, image)
    return Result(medium.output, len(image), layout["esp_size"], layout["fat_type"], epoch, epoch_source, results,
                  time.monotonic() - started)


def report(res: Result) -> str:
    """The per-arch sizes `cloud-boot build` prints."""
    lines = [f"{res.output}: {res.size / MIB:.1f} MiB hybrid ISO (ESP {res.esp_size // MIB} MiB FAT{res.fat_type}, "
             f"El Torito and GPT partition 2) in {res.seconds:.0f}s; SOURCE_DATE_EPOCH "
             f"{res.epoch if res.epoch is not None else 'unset'} ({res.epoch_source})",
             f"  {'arch':<12} {'firmware':>9} {'kernel':>9} {'initramfs':>10} {'UKI':>9}  on the ESP"]
    for a in res.arches:
        kernel = f"{a.kernel_size / MIB:7.2f}M" + ("z" if a.kernel_compressed else " ")
        lines.append(f"  {a.arch:<12} {a.firmware_size / MIB:8.2f}M {kernel:>9} {a.initramfs_size / MIB:9.2f}M "
                     f"{a.uki_size / MIB:8.2f}M  \\{esp_name(a.arch).replace('/', chr(92))}")
    if any(a.kernel_compressed for a in res.arches):
        lines.append("  (z: a plain Image stored zstd-compressed; the firmware unpacks it)")
    for a in res.over_budget():
        lines.append(f"  warning: the {a.arch} UKI is {a.uki_size / MIB:.2f} MiB, over the {UKI_BUDGET_MIB} MiB "
                     "budget")
    return "\n".join(lines)
