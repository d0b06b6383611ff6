"""The Linux init path's initramfs: our newc cpio writer, compression, and the builder that assembles
Debian's CPython, our PID 1 (cloudboot.init), the portable core and kernel modules for a target arch."""
