"""Image building, ours against the reference tools on the same inputs, timed in the same run:
- the 4-arch hybrid ISO (pycdlib + pyfatfs + our GPT) against the original's recipe: an ESP file of the
  same size, `mformat` (FAT type chosen by mtools), `mmd`/`mcopy`, then `xorriso -as mkisofs ...
  -append_partition 2 <ESP GUID> esp.img -appended_part_as_gpt`; image sizes side by side;
- an x86_64 UKI (Debian kernel and initrd) against systemd's `ukify build` (whose output ours equals).
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import arches
from bench.report import report
from cloudboot.fwbuild.firmware import firmware_dir
from cloudboot.harness.guests import guest
from cloudboot.image.esp import esp_size

RUNS = 3
ESP_GUID = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"


def _time(cmds: list[list[str]]) -> float:
    t0 = time.monotonic()
    for cmd in cmds:
        subprocess.run(cmd, check=True, capture_output=True)
    return time.monotonic() - t0


def _iso(work: Path) -> None:
    efis = {a.efi_name: firmware_dir() / a.efi_name for a in arches.ARCHES}
    ours_iso, ref_iso = work / "ours.iso", work / "ref.iso"
    ours = [[sys.executable, "-m", "cloudboot", "iso", "--from-build", "-o", str(ours_iso)]]
    esp, stage = work / "esp.img", work / "stage"
    stage.mkdir()
    (stage / "README.txt").write_text("cloud-boot multi-arch bootable image: the boot files live in GPT "
                                      "partition 2.\n")
    size = esp_size(sum(p.stat().st_size for p in efis.values()))  # the original's rule, as ours uses
    ref = [["rm", "-f", str(esp)], ["truncate", "-s", str(size), str(esp)], ["mformat", "-i", str(esp), "::"],
           ["mmd", "-i", str(esp), "::/EFI", "::/EFI/BOOT"],
           *[["mcopy", "-i", str(esp), str(src), f"::/EFI/BOOT/{name}"] for name, src in efis.items()],
           ["rm", "-f", str(ref_iso)],
           ["xorriso", "-as", "mkisofs", "-V", "CLOUDBOOT", "-o", str(ref_iso), "-no-emul-boot", "-e",
            "--interval:appended_partition_2:all::", "-append_partition", "2", ESP_GUID, str(esp),
            "-appended_part_as_gpt", str(stage)]]
    t_ours = statistics.median(_time(ours) for _ in range(RUNS))
    t_ref = statistics.median(_time(ref) for _ in range(RUNS))
    report("4-arch hybrid ISO build", t_ours, "mtools+xorriso", t_ref)
    print(f"{'':<40} image ours {ours_iso.stat().st_size} bytes | mtools+xorriso "
          f"{ref_iso.stat().st_size} bytes (ESP {size} bytes in both)", flush=True)


def _uki(work: Path) -> None:
    from cloudboot.harness.oracles import ukify

    g = guest("x86_64")
    stub = firmware_dir() / arches.get("x86_64").efi_name
    osrel = work / "os-release"
    osrel.write_text("ID=cloud-boot\nNAME=cloud-boot\nVERSION_ID=1\n")
    common = ["--stub", str(stub), "--linux", str(g.kernel), "--initrd", str(g.initrd), "--cmdline",
              "console=ttyS0", "--uname", g.version]
    ours = [[sys.executable, "-m", "cloudboot", "uki", *common, "--osrel", str(osrel), "-o",
             str(work / "ours.efi")]]
    theirs = [[sys.executable, str(ukify()), "build", *common, "--os-release", f"@{osrel}", "--output",
               str(work / "ukify.efi")]]
    t_ours = statistics.median(_time(ours) for _ in range(RUNS))
    t_ref = statistics.median(_time(theirs) for _ in range(RUNS))
    size = (work / "ours.efi").stat().st_size
    report(f"x86_64 UKI build ({size >> 20} MiB)", t_ours, "ukify build", t_ref)


def main() -> None:
    """Print the ISO and UKI ratios (ours / reference)."""
    work = Path(tempfile.mkdtemp(prefix="cloudboot-bench-img-"))
    try:
        _iso(work)
        _uki(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
