"""QMP harness: boots EFI apps, disk images and ISOs on four arches under QEMU + EDK2."""
