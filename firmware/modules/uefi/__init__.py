"""UEFI from Python inside the firmware: boot/runtime services, protocols, variables, block devices.

Firmware-only (it needs the C module `_uefi`); the portable core never imports it.
"""

from uefi import console  # noqa: F401
from uefi.blockio import BlockIo, block_devices  # noqa: F401
from uefi.core import (  # noqa: F401
    ARCH,
    EfiError,
    allocate_pages,
    bs_call,
    connect_all,
    firmware_vendor,
    free_pages,
    handle_protocol,
    image_handle,
    locate_handles,
    poweroff,
    reset_system,
    rt_call,
    stall,
    system_table,
)
from uefi.guid import (  # noqa: F401
    BLOCK_IO_PROTOCOL,
    CLOUDBOOT_VENDOR,
    DEVICE_PATH_PROTOCOL,
    DISK_IO_PROTOCOL,
    GLOBAL_VARIABLE,
    LOADED_IMAGE_PROTOCOL,
    guid_bytes,
    guid_str,
)
from uefi.image import load_options, loaded_image  # noqa: F401
from uefi.variables import cmdline_variable, get_variable, set_variable  # noqa: F401
