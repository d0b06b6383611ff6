# Frozen into every BOOT<ARCH>.EFI. $(CB_MODULES) is firmware/modules.
module("_boot.py", base_path="$(CB_MODULES)")
package("uefi", base_path="$(CB_MODULES)")
package("loader", base_path="$(CB_MODULES)")
package("bootplan", base_path="$(CB_MODULES)")
package("diskfs", base_path="$(CB_MODULES)")
package("compat", base_path="$(CB_MODULES)")
package("arches", base_path="$(CB_MODULES)")
