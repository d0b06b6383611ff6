# Frozen into every BOOT<ARCH>.EFI. $(CB_MODULES) is firmware/modules.
module("_boot.py", base_path="$(CB_MODULES)")
package("uefi", base_path="$(CB_MODULES)")
package("loader", base_path="$(CB_MODULES)")
# bootplan without hcl.py: HCL text is parsed on the host (bootplan.hcl); the firmware evaluates the parsed form.
package("bootplan", files=["__init__.py", "bls.py", "cmdline.py", "cmdtemplate.py", "discover.py", "distroargs.py",
                             "expr.py", "netorder.py", "plan.py", "version.py"],
        base_path="$(CB_MODULES)")
package("diskfs", base_path="$(CB_MODULES)")
package("compat", base_path="$(CB_MODULES)")
package("arches", base_path="$(CB_MODULES)")
package("oci", base_path="$(CB_MODULES)")
package("netstack", base_path="$(CB_MODULES)")
package("netboot", base_path="$(CB_MODULES)")
