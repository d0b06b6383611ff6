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
    else:
        print("cloud-boot: Enter boots, arrows or 1-%d choose" % len(labels))
    remaining = int(timeout_s * 10)
    while remaining > 0:  # the countdown, in 100 ms steps
        key = console.read_key()
        if key is not None:
            print("cloud-boot: countdown stopped")
            current = _apply(key, current, len(labels))
            if key[1] == ENTER:
                return current
            break
        core.stall(100000)
        remaining -= 1
        if remaining % 10 == 0 and remaining:
            print("cloud-boot: booting %d in %d s" % (current + 1, remaining // 10))
    else:
        if timeout_s > 0:
            return current
    while True:  # a key stopped the countdown: wait for Enter
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


def _apply(key, current, count):
    scan, char = key
    if scan == SCAN_UP:
        return (current - 1) % count
    if scan == SCAN_DOWN:
        return (current + 1) % count
    if ord("1") <= char <= ord("9") and char - ord("1") < count:
        return char - ord("1")
    return current
