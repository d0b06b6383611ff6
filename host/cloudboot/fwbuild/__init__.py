"""Firmware build: cross-compile the MicroPython UEFI port with zig, freeze modules, convert ELF -> PE32+."""
