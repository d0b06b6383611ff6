"""cloud-boot's Linux init (PID 1): runs on Debian's CPython inside the initramfs built by
`cloud-boot initramfs`. Mounts, console, command line, kernel modules, the disk target (through the
portable core) and the kexec hand-off; any failure ends in `FATAL: <reason>` and a Python rescue prompt.

Everything here must import on the host's CPython too (unit tests) and touch the system only when called."""
