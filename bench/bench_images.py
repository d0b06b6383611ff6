"""Image building: our hybrid ISO (pycdlib + pyfatfs + own GPT) against xorriso + mkfs.vfat/mtools building
the same layout (the original's recipe), and our UKI against objcopy --add-section, timed in the same run."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.report import report
from cloudboot.fwbuild.firmware import firmware_dir
from cloudboot.harness.guests import guest
from cloudboot.harness.profiles import PROFILES

RUNS = 3


def _time(cmds: list[list[str]]) -> float:
    t0 = time.monotonic()
    for cmd in cmds:
        subprocess.run(cmd, check=True, capture_output=True)
    return time.monotonic() - t0


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="cloudboot-bench-img-"))
    efis = {p.efi_name: firmware_dir() / p.efi_name for p in PROFILES.values()}
    ours = [[sys.executable, "-m", "cloudboot", "iso", "--from-build", "-o", str(work / "ours.iso")]]
    esp, stage = work / "esp.img", work / "stage"
    stage.mkdir()
    (stage / "README.txt").write_text("cloud-boot\n")
    ref = [["rm", "-f", str(esp)], ["mkfs.vfat", "-C", "-n", "ESP", str(esp), str(16 * 1024)],
           ["mmd", "-i", str(esp), "::/EFI", "::/EFI/BOOT"],
           *[["mcopy", "-i", str(esp), str(src), f"::/EFI/BOOT/{name}"] for name, src in efis.items()],
           ["xorriso", "-as", "mkisofs", "-V", "CLOUDBOOT", "-o", str(work / "ref.iso"), "-no-emul-boot", "-e",
            "--interval:appended_partition_2:all::", "-append_partition", "2",
            "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", str(esp), "-appended_part_as_gpt", str(stage)]]
    t_ours = statistics.median(_time(ours) for _ in range(RUNS))
    t_ref = statistics.median(_time(ref) for _ in range(RUNS))
    report("4-arch hybrid ISO build", t_ours, "xorriso+mtools", t_ref)
    print(f"{'':<40} image {(work / 'ours.iso').stat().st_size} bytes vs {(work / 'ref.iso').stat().st_size} bytes",
          flush=True)

    g = guest("x86_64")
    stub = firmware_dir() / "BOOTX64.EFI"
    uki = [[sys.executable, "-m", "cloudboot", "uki", "--stub", str(stub), "--linux", str(g.kernel), "--initrd",
            str(g.initrd), "--cmdline", "console=ttyS0", "-o", str(work / "ours.efi")]]
    objcopy = [["objcopy", "--add-section", f".linux={g.kernel}", "--change-section-vma", ".linux=0x2000000",
                "--add-section", f".initrd={g.initrd}", "--change-section-vma", ".initrd=0x3000000",
                str(stub), str(work / "ref.efi")]]
    t_ours = statistics.median(_time(uki) for _ in range(RUNS))
    t_ref = statistics.median(_time(objcopy) for _ in range(RUNS))
    report("x86_64 UKI build (12 MB kernel)", t_ours, "objcopy --add-section", t_ref)
