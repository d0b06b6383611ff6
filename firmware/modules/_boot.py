"""Frozen boot module: runs after the banner. Decides between the REPL and the loader."""

import uefi

WINDOW_MS = 1500


def _wants_repl():
    words = (uefi.load_options() + " " + uefi.cmdline_variable()).split()
    if "cloudboot.repl" in words:
        return True
    window = WINDOW_MS
    for w in words:  # cloudboot.wait=<ms>: the key window (0 skips it)
        if w.startswith("cloudboot.wait=") and w[15:].isdigit():
            window = int(w[15:])
    if not window:
        return False
    print("cloud-boot: press any key for the REPL")
    return uefi.console.key_within(window)


def main():
    if _wants_repl():
        return
    try:
        import loader  # the boot cascade (disk, UKI stub, network) when it is frozen in
    except ImportError:
        print("cloud-boot: no loader in this build; entering the REPL")
        return
    loader.run()


main()
