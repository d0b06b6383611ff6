"""diskfs: portable core package (runs on MicroPython and CPython)."""
