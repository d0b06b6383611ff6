"""Image building in Python: FAT ESPs, GPT, hybrid ISO9660/El Torito images (checked against real tools)."""
