"""PID 1: mounts, console, command line, kernel modules, the target, the exit sink (Path A: kexec).

The boot, in order (each step logs; timed phases feed the benchmark):
  1. mount proc, sysfs, devtmpfs, /run (tmpfs); reattach the console if the kernel could not open it;
  2. read /proc/cmdline and check every cloudboot.* value (a bad one is FATAL at once);
  3. load the initramfs's kernel modules in dependency order; mount efivarfs when the firmware is EFI;
  4. the target: disk mode (cloudboot.disk=) through the portable disk core, else plan mode (network, the
     plan from the first source that names one: planmode.plan_source);
  5. the exit: cloudboot.exit=kexec (default) -> kexec_file_load (arm64 without it: kexec_load, kexec_arm64)
     + reboot(LINUX_REBOOT_CMD_KEXEC); cloudboot.exit=reboot (or the plan's `exit = "reboot"`) -> Path C:
     stage on the cache ESP, Boot#### + BootOrder, reboot(LINUX_REBOOT_CMD_RESTART) (reboot.py).
The command line's cloudboot.exit (or the metadata's) wins over the target's `exit`, which wins over the
plan's top-level `exit`.
Any failure: `FATAL: <reason>` and a Python rescue prompt on the console; PID 1 never exits.
"""

from __future__ import annotations

import errno
import os
import sys

from cloudboot.init import cmdline, efivars, kexec, linux, modules
from cloudboot.init.efivars import EFIVARS
from cloudboot.init.errors import InitError
from cloudboot.init.log import log, now, phase
from cloudboot.init.rescue import fatal

WORKDIR = "/run/cloud-boot"
#: (source, target, type, flags, data)
PSEUDO = [
    ("proc", "/proc", "proc", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC, None),
    ("sysfs", "/sys", "sysfs", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC, None),
    ("devtmpfs", "/dev", "devtmpfs", linux.MS_NOSUID, "mode=0755"),
    ("tmpfs", "/run", "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, "mode=0755"),
]


def mount_pseudo() -> None:
    """proc, sysfs, devtmpfs and /run; one that is already mounted (EBUSY) is fine."""
    for source, target, fstype, flags, data in PSEUDO:
        os.makedirs(target, exist_ok=True)
        try:
            linux.mount(source, target, fstype, flags, data)
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                raise InitError(f"mount {fstype} on {target}: {exc.strerror}") from None


def ensure_console() -> None:
    """If the kernel started us without a console (no /dev/console in the rootfs), open it now."""
    try:
        os.fstat(1)
        return
    except OSError:
        pass
    fd = os.open("/dev/console", os.O_RDWR | os.O_NOCTTY)
    for n in (0, 1, 2):
        os.dup2(fd, n)
    if fd > 2:
        os.close(fd)
    sys.stdin = open(0, closefd=False)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)


def mount_efivarfs() -> bool:
    """efivarfs on its mount point when the kernel booted through EFI (the directory exists)."""
    if not os.path.isdir(EFIVARS):
        log("efivarfs: not an EFI boot (no /sys/firmware/efi)")
        return False
    from cloudboot.init import efivars

    try:
        efivars.mount(EFIVARS)
    except efivars.EfiVarError as exc:
        raise InitError(f"efivarfs: {exc}") from None
    log(f"efivarfs: mounted on {EFIVARS}")
    return True


def exit_sink(cmd: dict[str, str], target) -> str:
    """The exit sink: cloudboot.exit, else the plan's choice for the target, else kexec (InitError for a value
    that is neither, e.g. from metadata, which is merged after the command line's checks)."""
    sink = cmd.get("cloudboot.exit") or getattr(target, "exit", "") or "kexec"
    if sink not in ("kexec", "reboot"):
        raise InitError(f"cloudboot.exit={sink!r}: want 'kexec' or 'reboot'")
    return sink


def lldp_default_name(machine: str) -> str:
    """The LLDP system name advertised by default: `cloud-boot-<Go arch>` as the original (REFERENCE §1.1)."""
    import arches

    try:
        return f"cloud-boot-{arches.get(machine).go}"
    except arches.ArchError:
        return f"cloud-boot-{machine}"


def choose_target(cmd: dict[str, str], variable: dict[str, str] | None = None):
    """The boot target the command line asks for, its files ready in WORKDIR: disk mode (cloudboot.disk=),
    else plan mode over the network, the plan named by the first of the sources planmode.plan_source lists
    (the command line, the DHCP boot file name, CloudBootCmdline, a metadata URL). `variable`: the
    CloudBootCmdline variable's keys (None when unset). With a metadata URL, disk mode too waits for the
    network: the metadata may hold the disk's settings (a LUKS passphrase), and they win over the command line."""
    from cloudboot.init import disk

    spec = cmd.get("cloudboot.disk", "")
    if spec and not cmd.get("cloudboot.metadata.url"):
        log(f"arch={os.uname().machine} booting from local disk {spec}")
        with phase("disk"):
            return disk.prepare(cmd, WORKDIR)
    from cloudboot.init import net, planmode

    log(f"arch={os.uname().machine} booting via cmdline keys plan={cmd.get('cloudboot.plan', '')} "
        f"image={cmd.get('cloudboot.image', '')} target={cmd.get('cloudboot.target', '')}")
    log("bringing up network")
    with phase("network"):
        leases = net.bring_up(cmd)
    listener = None
    if cmd.get("cloudboot.lldp", "1") != "0" and not spec:
        wait = cmd.get("cloudboot.lldp.wait", "10s") or "0"
        wait = 0.0 if wait.startswith("-") else cmdline.duration(wait)
        name = cmd.get("cloudboot.lldp.name") or lldp_default_name(os.uname().machine)
        from cloudboot.init import lldp

        listener = lldp.Listener(net.ethernet_links(), wait, cmd.get("cloudboot.lldp.tx", "1") != "0", name).start()
    with phase("plan"):
        bootfile = next((lz.bootfile for lz in leases if lz.bootfile), "")  # the first link that has one
        return planmode.run(cmd, WORKDIR, listener, leases[0] if leases else None, variable, bootfile)


def read_variable(cmd: dict[str, str]) -> dict[str, str] | None:
    """CloudBootCmdline's keys from efivarfs (None when unset or unusable, which is logged); the keys the
    kernel's command line lacks are added to `cmd` and checked like it."""
    from bootplan.cmdline import parse

    text, why = efivars.cmdline_variable()
    if text is None:
        if why != "unset":
            log(f"CloudBootCmdline ignored: {why}")
        return None
    variable = parse(text)
    added = {k: v for k, v in variable.items() if k not in cmd}
    log(f"CloudBootCmdline: {text}" + (f" (adds {' '.join(sorted(added))})" if added else ""))
    cmd.update(added)
    for warning in cmdline.check(added):
        log(f"cmdline: {warning}")
    return variable


def run(cmd: dict[str, str]) -> None:
    """The boot; returns only if the kexec did not happen (the caller treats that as fatal)."""
    started = now()
    with phase("mounts"):
        mount_pseudo()
    ensure_console()
    uname = os.uname()
    log(f"init: Python {sys.version.split()[0]} on {uname.machine}, kernel {uname.release}, "
        f"PID {os.getpid()}, started {started:.6f}s after the kernel")
    cmd.update(cmdline.read())
    for warning in cmdline.check(cmd):
        log(f"cmdline: {warning}")
    with phase("modules"):
        loaded = modules.load_all(f"/lib/modules/{uname.release}")
    log(f"modules: loaded {' '.join(loaded) or 'none'}")
    efi = mount_efivarfs()
    variable = read_variable(cmd) if efi else None  # CloudBootCmdline may add keys, cloudboot.exit too
    if cmd.get("cloudboot.exit") == "reboot" and not efi:
        raise InitError("cloudboot.exit=reboot needs UEFI variables, and this kernel was not booted through "
                        f"UEFI (no {EFIVARS}): boot the medium from UEFI firmware, or use cloudboot.exit=kexec")
    if cmd.get("cloudboot.keymap"):
        from cloudboot.init import keymap  # its layout tables: 15 ms of arm64 start-up under TCG, for a serial console

        keymap.apply(cmd["cloudboot.keymap"])
    os.makedirs(WORKDIR, exist_ok=True)
    target = choose_target(cmd, variable)
    sink = exit_sink(cmd, target)
    if sink == "reboot":
        from cloudboot.init import disk, reboot

        if not efi:
            raise InitError(f"{target.description} asks for exit = \"reboot\" (Path C), which needs UEFI "
                            f"variables; this kernel was not booted through UEFI (no {EFIVARS})")
        reboot.run(target, cmd, WORKDIR, disk.whole_disks)
    if sink == "kexec":
        log(f'kexec load (kernel={target.kernel} initrd={target.initrd} cmdline="{target.cmdline}") '
            f"from {target.description}")
        with phase("kexec-load"):
            kexec.load(target.kernel, target.initrd, target.cmdline)
        log("kexec boot")
        kexec.boot()


def main() -> None:
    """Entry point of /init: never returns, never raises."""
    cmd: dict[str, str] = {}
    try:
        run(cmd)
        reason = "init finished without handing over to a kernel"
    except InitError as exc:
        reason = str(exc)
    except BaseException as exc:  # noqa: BLE001 - PID 1: everything ends at the rescue prompt
        import traceback

        traceback.print_exc()
        reason = f"{type(exc).__name__}: {exc}"
    fatal(reason, {"cmd": cmd})
