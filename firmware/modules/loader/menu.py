"""A console boot menu: numbers or arrow keys to choose, Enter to boot, a countdown any key stops."""

from uefi import console, core

SCAN_UP, SCAN_DOWN = 1, 2
ENTER = 13


def _show(labels, current):
    for i, label in enumerate(labels):
        print("%s %d. %s" % (">" if i == current else " ", i + 1, label))


def choose(labels, default=0, timeout_s=5):
    """Index of the chosen entry: `default` when the countdown runs out without a key; timeout_s 0 waits."""
    current = default
    _show(labels, current)
    if timeout_s > 0:
        print("cloud-boot: Enter boots, arrows or 1-%d choose; default in %d s" % (len(labels), timeout_s))
        key = _countdown(current, timeout_s)
        if key is None:
            return current
        print("cloud-boot: countdown stopped")
        current = _apply(key, current, len(labels))
        if key[1] == ENTER:
            return current
    else:
        print("cloud-boot: Enter boots, arrows or 1-%d choose" % len(labels))
    while True:  # a key stopped the countdown, or there is none: wait for Enter
        key = console.read_key()
        if key is None:
            core.stall(20000)
            continue
        if key[1] == ENTER:
            return current
        new = _apply(key, current, len(labels))
        if new != current:
            current = new
            print("> %d. %s" % (current + 1, labels[current]))


def _countdown(current, timeout_s):
    """The key that stopped the countdown (100 ms steps, a line each second), or None when it ran out."""
    remaining = max(1, int(timeout_s * 10))
    while remaining > 0:
        key = console.read_key()
        if key is not None:
            return key
        core.stall(100000)
        remaining -= 1
        if remaining % 10 == 0 and remaining:
            print("cloud-boot: booting %d in %d s" % (current + 1, remaining // 10))
    return None


def _apply(key, current, count):
    scan, char = key
    if scan == SCAN_UP:
        return (current - 1) % count
    if scan == SCAN_DOWN:
        return (current + 1) % count
    if ord("1") <= char <= ord("9") and char - ord("1") < count:
        return char - ord("1")
    return current
