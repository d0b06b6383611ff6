"""Path D's speed. (a) A 64 MiB blob over HTTP into our firmware (lwIP + our virtio-net driver + netstack.http,
sha256 verified, as every Path D download is; and the plain transfer) next to Debian's iPXE (`ipxe.efi`,
x86_64) fetching the same file with `imgfetch` in the same QEMU setup (q35, OVMF, user networking, virtio-net):
on QEMU's default CPU (no SHA extensions: plain C SHA-256) and on `-cpu max` (SHA-NI, as most x86 servers
since 2017-2019 have), and aarch64's figure (Armv8 SHA-2 instructions) next to the same x86_64 iPXE run
(Debian ships no arm64 iPXE EFI build).
(b) Per arch: QEMU start -> the target initrd's marker through Path D (firmware alone, plan from the DHCP boot
file name, kernel + initrd from a registry on 127.0.0.1) next to -kernel/-initrd of the same files, twice: handed
by QEMU to the same EDK2 (the machine as Path D finds it: EDK2's own start, 1-2.5 s under TCG, is in both) and
loaded by QEMU with no firmware at all (bench_init gives the UKI+init+kexec path's figure)."""

from __future__ import annotations

import functools
import http.server
import os
import secrets
import tempfile
import threading
from pathlib import Path

import arches
from bench.report import report
from cloudboot.fwbuild.firmware import firmware_dir
from cloudboot.harness import trial
from cloudboot.harness.guests import MARKER, guest
from cloudboot.harness.machine import Machine
from cloudboot.harness.repl import Repl
from tests.e2e.netbootvm import GUEST_HOST, PLAN, nic_args, push_boot_index, push_plan

BLOB_MB = 64
IPXE = Path("/usr/lib/ipxe/ipxe.efi")  # Debian's `ipxe` package (x86_64 EFI build)
MAX = ("-cpu", "max")  # x86_64 with the SHA extensions (QEMU's TCG emulates SHA-NI)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass


def _serve(directory: Path) -> http.server.ThreadingHTTPServer:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(directory)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def _ours(port: int, arch: str = "x86_64", cpu: tuple[str, ...] = ()) -> tuple[float, float]:
    """(verified MiB/s, plain MiB/s) of our firmware fetching blob.bin, timed like iPXE's: by the host, from the
    console lines around it (one clock for both)."""
    efi = firmware_dir() / arches.get(arch).efi_name
    with Machine(arch, efi=efi, append="cloudboot.repl", extra=nic_args() + list(cpu)) as m:
        repl = Repl(m)
        repl.wait_banner(120)
        repl.enter(60)
        repl.exec("from netboot import link\nnic, lease = link.bring_up(print)", 120)
        repl.launch(
            "import hashlib\nfrom netstack import http\nt = http.Transport()\nbuf = bytearray(1 << 20)\n"
            "def fetch(hashed):\n"
            "    print('FETCH-START', hashed)\n"
            f"    r = t.request('GET', 'http://{GUEST_HOST}:{port}/blob.bin', {{}})\n"
            "    h = hashlib.sha256()\n    n = 0\n"
            "    while True:\n"
            "        k = r.readinto(buf)\n"
            "        if not k:\n            break\n"
            "        if hashed:\n            h.update(memoryview(buf)[:k])\n"
            "        n += k\n"
            "    print('FETCH-DONE', hashed, n)\n"
            "fetch(1)\nfetch(0)\n", 120)
        rates = []
        for hashed in (1, 0):
            start = m.expect_line(f"^FETCH-START {hashed}$", 600).at
            done = m.expect_line(rf"^FETCH-DONE {hashed} \d+$", 600)
            rates.append(int(done.text.split()[-1]) / (1 << 20) / (done.at - start))
    return rates[0], rates[1]


def _ipxe(port: int, work: Path, cpu: tuple[str, ...] = ()) -> float:
    """MiB/s of iPXE's imgfetch of blob.bin (serial timestamps around it; the script comes by DHCP)."""
    (work / "bench.ipxe").write_text(f"#!ipxe\necho IPXE-FETCH-START\nimgfetch http://{GUEST_HOST}:{port}/blob.bin\n"
                                     "echo IPXE-FETCH-DONE\npoweroff\n")
    net = ["-netdev", f"user,id=n0,bootfile=http://{GUEST_HOST}:{port}/bench.ipxe",
           "-device", "virtio-net-pci,netdev=n0,romfile=,disable-legacy=on"]
    with Machine("x86_64", efi=IPXE, extra=net + list(cpu)) as m:
        start = m.expect_line("IPXE-FETCH-START", 180).at
        done = m.expect_line("IPXE-FETCH-DONE", 600).at
    return BLOB_MB / (done - start)


def _path_d(arch: str, plan_url: str) -> float:
    efi = firmware_dir() / arches.get(arch).efi_name
    with Machine(arch, efi=efi, append="cloudboot.wait=0", extra=nic_args(plan_url) + ["-no-reboot"]) as m:
        return m.expect_line(MARKER, 900).at


def _direct(arch: str, cmdline: str, uefi: bool) -> float:
    """QEMU start -> marker, QEMU's -kernel/-initrd: loaded by QEMU itself (uefi=False), or handed over fw_cfg to
    the same EDK2 Path D starts in (uefi=True; the only way on loongarch64, whose Debian kernel is an EFI zboot
    image QEMU cannot load)."""
    g = guest(arch)
    with Machine(arch, extra_kernel=(g.kernel, g.initrd, cmdline), uefi=uefi or trial.needs_efi(arch),
                 extra=["-no-reboot"]) as m:
        return m.expect_line(MARKER, 900).at


def main() -> None:
    from cloudboot.registry.local import serving

    work = Path(tempfile.mkdtemp(prefix="cloudboot-bench-netboot-"))
    with open(work / "blob.bin", "wb") as f:
        f.write(os.urandom(BLOB_MB << 20))
    srv = _serve(work)
    port = srv.server_address[1]
    try:
        for label, arch, cpu in (("x86_64", "x86_64", ()), ("x86_64 -cpu max", "x86_64", MAX),
                                 ("aarch64", "aarch64", ())):
            verified, plain = _ours(port, arch, cpu)
            if not IPXE.is_file():
                print(f"{label}: {BLOB_MB} MiB HTTP: ours {verified:.1f} MiB/s verified, {plain:.1f} plain; no {IPXE} "
                      "(apt-get install ipxe) for the reference", flush=True)
                continue
            ipxe = _ipxe(port, work, cpu if arch == "x86_64" else ())
            ref = "iPXE imgfetch" + (" (x86_64)" if arch != "x86_64" else "")
            report(f"{label}: {BLOB_MB} MiB HTTP, sha256 verified", verified, ref, ipxe, "MiB/s")
            report(f"{label}: {BLOB_MB} MiB HTTP, plain transfer", plain, ref, ipxe, "MiB/s")
    finally:
        srv.shutdown()
    with serving(work / "registry") as reg:
        token = secrets.token_hex(4)
        push_boot_index(reg, work, list(arches.NAMES))
        plan_url = push_plan(reg, work, "plans/bench:v1", PLAN.format(reg=f"{GUEST_HOST}:{reg.port}", token=token))
        for arch in arches.NAMES:
            cmdline = f"console={arches.get(arch).linux_console} panic=-1 cbnet={token}"
            ours = _path_d(arch, plan_url)
            # the same machine with the same firmware, booting the files it was given: Path D's own cost
            report(f"{arch}: QEMU start -> marker, Path D", ours, "EDK2 -kernel/-initrd", _direct(arch, cmdline, True))
            if not trial.needs_efi(arch):  # and QEMU loading them with no firmware at all
                report(f"{arch}: QEMU start -> marker, Path D", ours, "QEMU -kernel/-initrd",
                       _direct(arch, cmdline, False))
