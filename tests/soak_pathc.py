"""`make soak`: Path C over and over in one VM whose variable store persists (not in CI; an hour for 100 cycles
on x86_64 under TCG). Each cycle: the medium boots (disk mode: the target disk's Debian kernel and the Path C
test initrd), stages it, writes the boot entry, reboots; the firmware starts the target from the cache ESP;
the target shows `efibootmgr -v` and the variable store; it runs reset-cloud-boot.sh and reboots; the medium
boots again. After each cycle: exactly one cloud-boot entry existed and was first in BootOrder, the number of
boot entries and of variables did not grow, and the reset removed the entry.

    python -m tests.soak_pathc [--cycles 100] [--arch x86_64]
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

import arches
from cloudboot.harness import trial
from cloudboot.harness.machine import HarnessTimeout, Machine
from cloudboot.image import cachedisk

TIMEOUT = 300


def cycle(m: Machine) -> dict:
    """One stage -> reboot -> target -> reset cycle on a running machine; returns what the target saw.
    AssertionError or HarnessTimeout when something is off."""
    m.expect_line(r"cloud-boot: .* init: Python", TIMEOUT)
    num = re.search(r"(Boot[0-9A-F]{4}) written", m.expect_line(r"reboot-sink: Boot[0-9A-F]{4} written", TIMEOUT)
                    .text).group(1)
    m.expect_line(rf'BdsDxe: starting {num} "cloud-boot disk" from HD\(', TIMEOUT)
    m.expect_line(trial.EFI_MARKER, TIMEOUT)
    order = m.expect_line(r"^BootOrder: ", 60).text.split(": ", 1)[1].split(",")
    entries = []
    while True:
        line = m.expect_line(r"^(Boot[0-9A-F]{4}|efibootmgr: status)", 60).text
        if line.startswith("efibootmgr"):
            assert line == "efibootmgr: status 0", line
            break
        entries.append(line)
    ours = [e[:8] for e in entries if "cloud-boot " in e]
    assert ours == [num], f"cloud-boot entries {ours}, expected only {num}"
    assert order[0] == num[4:], f"BootOrder {order} does not start with {num}"
    store = re.search(r"target efivars: (\d+) variables, (\d+) of (\d+) blocks free",
                      m.expect_line(r"target efivars:", 30).text)
    m.expect("target: command?", 30)
    m.send("reset\n")
    m.expect_line(rf"^deleted {num}$", 60)
    m.expect_line("reset: status 0", 60)
    return {"entry": num, "entries": len(entries), "order": len(order), "variables": int(store.group(1)),
            "free": int(store.group(2)), "total": int(store.group(3))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.soak_pathc", description=__doc__.split("\n\n")[0])
    p.add_argument("--cycles", type=int, default=100)
    p.add_argument("--arch", default="x86_64", help="x86_64 or aarch64")
    args = p.parse_args(argv)
    arch = arches.get(args.arch).name
    debarch = arches.get(arch).debian  # the trial images are kept per Debian arch name
    work = Path(tempfile.mkdtemp(prefix="cloudboot-soak-"))
    target, _ = trial.target_disk(debarch, efi=True)
    medium = trial.uki_medium(debarch, "cloudboot.disk=LABEL=CBTARGET cloudboot.exit=reboot "
                                       f'cloudboot.cmdline="console={trial.console(arch)} panic=-1"',
                              work / "medium.img")
    cachedisk.make(work / "cache.img")
    m = Machine(arch, disks=[medium, work / "cache.img", target], vars_file=work / "vars.fd", bootindex=False,
                extra=["-smp", "2"]).start()
    first, passed = None, 0
    started = time.monotonic()
    try:
        for n in range(1, args.cycles + 1):
            t0 = time.monotonic()
            try:
                seen = cycle(m)
                if first is None:
                    first = seen
                for key in ("entries", "order", "variables"):
                    assert seen[key] <= first[key], f"{key} grew from {first[key]} to {seen[key]}"
            except (AssertionError, HarnessTimeout) as exc:
                print(f"cycle {n}: FAILED: {exc}", flush=True)
                break
            passed += 1
            print(f"cycle {n}: ok in {time.monotonic() - t0:.0f}s: {seen['entry']}, {seen['entries']} boot entries, "
                  f"BootOrder of {seen['order']}, {seen['variables']} variables, {seen['free']} of {seen['total']} "
                  "variable-store blocks free", flush=True)
    finally:
        m.kill()
    print(f"soak: {passed}/{args.cycles} cycles passed on {arch} in {time.monotonic() - started:.0f}s "
          f"(work files in {work})", flush=True)
    return 0 if passed == args.cycles else 1


if __name__ == "__main__":
    sys.exit(main())
