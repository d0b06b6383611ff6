"""EFI_LOADED_IMAGE_PROTOCOL of this image: load options, device handle, where it sits in memory."""

from uefi import core, guid, mem


class LoadedImage:
    """The fields of EFI_LOADED_IMAGE_PROTOCOL that boot code needs."""

    def __init__(self, addr):
        self.addr = addr
        self.parent = mem.u64(addr + 8)
        self.device_handle = mem.u64(addr + 24)
        self.file_path = mem.u64(addr + 32)
        self.load_options_size = mem.u32(addr + 48)
        self.load_options_addr = mem.u64(addr + 56)
        self.image_base = mem.u64(addr + 64)
        self.image_size = mem.u64(addr + 72)

    def load_options_bytes(self):
        """The raw LoadOptions buffer."""
        if not self.load_options_addr or not self.load_options_size:
            return b""
        return mem.read(self.load_options_addr, self.load_options_size)


def loaded_image(handle=None):
    """LoadedImage of `handle` (default: this image)."""
    return LoadedImage(core.handle_protocol(handle or core.image_handle(), guid.LOADED_IMAGE_PROTOCOL))


def load_options():
    """This image's LoadOptions as text (UCS-2 as the boot manager and shells pass them; '' if none)."""
    raw = loaded_image().load_options_bytes()
    if len(raw) >= 2 and raw[1] == 0:
        return mem.ucs2_decode(raw)
    # Some loaders (and the EFI stub convention for kernels) pass 8-bit text.
    return "".join(chr(b) for b in raw if b).strip()
