"""The distro's kernel arguments (what GRUB would pass) for a disk kernel without a BLS entry: grub.cfg's
`linux` line, /etc/default/grub (+ grub.d), /etc/kernel/cmdline; read from a real ext4 image made by mkfs.ext4."""

import io
import os

from bootplan import distroargs
from diskfs import open_filesystem
from diskfs.blockdev import FileDevice

ROOT = "root=UUID=01234567-89ab-cdef-0123-456789abcdef"


def _image():
    return open_filesystem(FileDevice(os.getenv("CLOUDBOOT_TESTDATA") + "/ext4-debian-cloud.img"))


def test_grub_cfg_linux_line_for_the_kernel():
    args, source = distroargs.find(_image(), "/boot/vmlinuz-6.1.0-9-cloud-amd64", ROOT)
    # the first entry naming the kernel, $vars from `set`, an unset one empty, a quoted blank kept quoted
    assert args == 'root=PARTUUID=abcd ro console=tty0 console=ttyS0,115200 quiet splash "x=a b"', args
    assert source == "/boot/grub/grub.cfg line 13 (menuentry 'Debian GNU/Linux')", source


def test_default_grub_when_grub_cfg_does_not_name_the_kernel():
    args, source = distroargs.find(_image(), "/boot/vmlinuz-6.12.10-cloud-amd64", ROOT)
    assert args == (ROOT + " ro net.ifnames=0 biosdevname=0 console=tty0 console=ttyS0,115200 "
                    "earlyprintk=ttyS0,115200 consoleblank=0"), args
    assert source == ("/etc/default/grub + /etc/default/grub.d/10_cloud.cfg + "
                      "/etc/default/grub.d/20_extra.cfg"), source


class _Tree:
    def __init__(self, files):
        self.files = files

    def exists(self, path):
        return path in self.files

    def open(self, path):
        return io.BytesIO(self.files[path])

    def listdir(self, path):
        raise OSError(path)


def test_kernel_cmdline_file_and_nothing():
    args, source = distroargs.find(_Tree({"/etc/kernel/cmdline": b"root=/dev/vda2 rw\n  quiet\n"}), "/vmlinuz", ROOT)
    assert (args, source) == ("root=/dev/vda2 rw quiet", "/etc/kernel/cmdline")
    args, _ = distroargs.find(_Tree({"/etc/kernel/cmdline": b"console=ttyS0"}), "/vmlinuz", ROOT)
    assert args == ROOT + " ro console=ttyS0"  # no root= of its own: GRUB's kind is added
    assert distroargs.find(_Tree({}), "/vmlinuz", ROOT) == (ROOT + " ro", "no GRUB config or /etc/kernel/cmdline")


def test_grub_syntax_corners():
    cfg = (b"set a=1; set b=\"two $a\"\nmenuentry \"multi\nline\" {\n linux (hd0,gpt2)/vmlinuz-x ${b} 'lit $a' "
           b"c=\\$a \\\n  d=${nope:-x} $\n}\n")
    args, source = distroargs.find(_Tree({"/grub/grub.cfg": cfg}), "/boot/vmlinuz-x", ROOT)
    assert args == 'two 1 "lit $a" c=$a d= $', args  # an unquoted $var splits into words, as in GRUB
    assert source == "/grub/grub.cfg line 4 (menuentry 'multi\\nline')", source


def test_unquoted_expansion_splits_words():
    cfg = b"set k=\"  x  y \"\nset one=z\nlinux /vmlinuz-x a${k}b ${k} \"q${k}\" p$one $k\n"
    args, _ = distroargs.find(_Tree({"/grub/grub.cfg": cfg}), "/vmlinuz-x", ROOT)
    assert args == 'a x y b x y "q  x  y " pz x y', args


def test_hostile_files_are_bounded():
    big = b"GRUB_CMDLINE_LINUX=" + b"x" * (distroargs.MAX_FILE + 1)
    args, source = distroargs.find(_Tree({"/etc/default/grub": big}), "/vmlinuz", ROOT)
    assert source == "no GRUB config or /etc/kernel/cmdline"
    long_value = b'GRUB_CMDLINE_LINUX="' + b"y" * 100000 + b'"\n'
    args, _ = distroargs.find(_Tree({"/etc/default/grub": long_value}), "/vmlinuz", ROOT)
    assert len(args) == len(ROOT + " ro ") + distroargs.MAX_VALUE - len("GRUB_CMDLINE_LINUX=")
    for junk in (b"'unterminated", b'"unterminated $', b"${", b"\\", b"=x", b";;;\n\n#"):
        distroargs.find(_Tree({"/etc/default/grub": junk, "/boot/grub/grub.cfg": junk}), "/vmlinuz", ROOT)
