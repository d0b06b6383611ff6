"""Frozen boot module: runs after the banner. Decides between the REPL and the loader."""

import uefi
from bootplan import cmdline

WINDOW_MS = 1500


def _wants_repl():
    """`cloudboot.repl` enters the REPL at once; else a key within `cloudboot.wait=<ms>` (0 skips the window).
    The keys come from this image's LoadOptions and CloudBootCmdline (malformed values count as absent; the
    loader reports them)."""
    opts = cmdline.check(cmdline.merge(uefi.load_options(), uefi.cmdline_variable()))[0]
    if opts.get("cloudboot.repl") == "1":
        return True
    window = int(opts.get("cloudboot.wait", WINDOW_MS))
    if not window:
        return False
    print("cloud-boot: press any key for the REPL")
    return uefi.console.key_within(window)


def main():
    if _wants_repl():
        return
    try:
        import loader  # the boot cascade (UKI stub, ESP target, BLS entries, disks) when it is frozen in
    except ImportError:
        print("cloud-boot: no loader in this build; entering the REPL")
        return
    loader.run()


main()
