#!/bin/sh
# reset-cloud-boot.sh: undo cloud-boot's Path C on this machine, for systems without Python (plain POSIX sh;
# busybox works). `cloud-boot reset` does the same in Python; `cloud-boot reset --print-script` prints this.
#
# Removes the boot entries cloud-boot wrote (Boot#### described "cloud-boot ...", or only Boot$BOOTNUM when
# BOOTNUM is set), their BootOrder slots (every other entry stays, in order), BootNext when it points at one
# of them, and the loader's CloudBootCmdline/CloudBootTarget variables. The next boot then takes the
# firmware's next entry (the boot medium). Options: -r|--reboot (sync and reboot afterwards), -h|--help.
# EFIVARS overrides /sys/firmware/efi/efivars (tests). Exit status: 0 done, 1 failure, 64 bad usage.
set -u

VARS=${EFIVARS:-/sys/firmware/efi/efivars}
GLOBAL=8be4df61-93ca-11d2-aa0d-00e098032b8c
CLOUDBOOT=c10ddb07-83c5-4d3e-9b76-1f4c0e7a3b8e
PREFIX=63006c006f00750064002d0062006f006f0074002000   # "cloud-boot " in UTF-16LE
TMP=${TMPDIR:-/tmp}/cloud-boot-reset.$$

usage() { echo "usage: $0 [-r|--reboot] [-h|--help]"; }
fail() { echo "$0: $*" >&2; rm -f "$TMP"; exit 1; }

REBOOT=0
for arg in "$@"; do
  case $arg in
    -r|--reboot) REBOOT=1 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 64 ;;
  esac
done
[ "$(id -u)" = 0 ] || fail "must run as root"
if [ -z "$(ls -A "$VARS" 2>/dev/null)" ]; then
  [ -d "$VARS" ] || fail "$VARS does not exist: this system was not booted through UEFI"
  mount -t efivarfs efivarfs "$VARS" || fail "cannot mount efivarfs on $VARS"
fi

# A file's bytes as one lower-case hex string. Through cat: efivarfs files cannot seek, so no `od -j`.
hex() { cat "$1" | od -An -v -tx1 | tr -d ' \n'; }
mutable() { [ -e "$1" ] && { chattr -i "$1" 2>/dev/null || true; }; }   # efivarfs marks unknown ones immutable
delete() { mutable "$1"; rm -f "$1" || fail "cannot delete $1"; }
# setvar FILE HEX: the variable = attributes NV|BS|RT + data, in ONE write (efivarfs sets it per write()).
setvar() {
  h=07000000$2 out=
  while [ -n "$h" ]; do
    out=$out$(printf '\\%03o' "0x${h%"${h#??}"}")
    h=${h#??}
  done
  printf "$out" > "$TMP" || fail "cannot write $TMP"
  mutable "$1"
  dd if="$TMP" of="$1" bs="$(wc -c < "$TMP")" count=1 2>/dev/null || fail "cannot write $1"
  rm -f "$TMP"
}

ours=   # our entries' numbers as BootOrder stores them (little-endian hex: Boot0001 -> 0100)
for f in "$VARS"/Boot[0-9A-Fa-f][0-9A-Fa-f][0-9A-Fa-f][0-9A-Fa-f]-$GLOBAL; do
  [ -e "$f" ] || continue
  num=${f##*/Boot}; num=${num%%-*}
  if [ -n "${BOOTNUM:-}" ]; then
    [ "$(echo "$num" | tr a-f A-F)" = "$(echo "$BOOTNUM" | tr a-f A-F)" ] || continue
  else
    [ "$(hex "$f" | cut -c21-64)" = "$PREFIX" ] || continue   # description: bytes 10-31
  fi
  delete "$f"
  echo "deleted Boot$num"
  le=$(echo "$num" | tr A-F a-f | sed 's/\(..\)\(..\)/\2\1/')
  ours="$ours $le"
done

order=$VARS/BootOrder-$GLOBAL
if [ -n "$ours" ] && [ -e "$order" ]; then
  old=$(hex "$order" | cut -c9-) rest=$old kept= before= after=
  while [ -n "$rest" ]; do
    slot=${rest%"${rest#????}"}; rest=${rest#????}
    shown=$(echo "$slot" | sed 's/\(..\)\(..\)/\2\1/' | tr a-f A-F)
    before=$before${before:+,}$shown
    case " $ours " in
      *" $slot "*) ;;
      *) kept=$kept$slot; after=$after${after:+,}$shown ;;
    esac
  done
  if [ "$kept" != "$old" ]; then
    if [ -n "$kept" ]; then setvar "$order" "$kept"; else delete "$order"; fi
    echo "BootOrder $before -> ${after:-(empty)}"
  fi
fi

next=$VARS/BootNext-$GLOBAL
if [ -n "$ours" ] && [ -e "$next" ]; then
  case " $ours " in *" $(hex "$next" | cut -c9-12) "*) delete "$next"; echo "deleted BootNext" ;; esac
fi
for name in CloudBootCmdline CloudBootTarget; do
  if [ -e "$VARS/$name-$CLOUDBOOT" ]; then delete "$VARS/$name-$CLOUDBOOT"; echo "deleted $name"; fi
done
[ -n "$ours" ] || echo "no cloud-boot boot entry found"
echo "next boot: the firmware's next boot entry (the boot medium)"
if [ "$REBOOT" = 1 ]; then
  sync
  reboot
fi
