#!/usr/bin/env bash
# Fetches the Debian kernel the measured-boot VM test boots, into a cache dir, without installing
# anything into the host's /boot or /lib/modules: `apt-get download` + `dpkg-deb -x` in a scratch
# dir, keeping only vmlinuz and the one module the guest needs (qemu_fw_cfg.ko, which carries the
# host's nonce into the guest; TPM TIS/CRB drivers are built into Debian's kernel).
#
#   scripts/vm/fetch-kernel.sh [CACHE_DIR]     (default: $QUORATE_VM_CACHE, /var/cache/quorate-vm,
#                                               or ~/.cache/quorate-vm when that is not writable)
#
# Prints the cache dir on stdout. Idempotent: does nothing when both files are already there.
# The package defaults to the one the shared fixtures were recorded with; override with
# QUORATE_VM_KERNEL_PKG (e.g. the version `apt-cache depends linux-image-amd64` names).
set -euo pipefail
CACHE=${1:-${QUORATE_VM_CACHE:-/var/cache/quorate-vm}}
PKG=${QUORATE_VM_KERNEL_PKG:-linux-image-6.1.0-56-amd64}
VER=${PKG#linux-image-}
# No explicit cache, the default one not filled yet and not writable (not root): the user's
# cache dir instead.
if [ $# -eq 0 ] && [ -z "${QUORATE_VM_CACHE:-}" ] \
  && ! { [ -f "$CACHE/vmlinuz-$VER" ] && [ -f "$CACHE/qemu_fw_cfg-$VER.ko" ]; } \
  && ! { mkdir -p "$CACHE" 2>/dev/null && [ -w "$CACHE" ]; }; then
  CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/quorate-vm
fi
mkdir -p "$CACHE"
if [ -f "$CACHE/vmlinuz-$VER" ] && [ -f "$CACHE/qemu_fw_cfg-$VER.ko" ]; then echo "$CACHE"; exit 0; fi
# Serialise concurrent runs (two test files, two engineers) on the same cache.
exec 9>"$CACHE/.lock"
flock 9
if [ -f "$CACHE/vmlinuz-$VER" ] && [ -f "$CACHE/qemu_fw_cfg-$VER.ko" ]; then echo "$CACHE"; exit 0; fi
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/quorate-kernel-XXXXXX")
trap 'rm -rf "$SCRATCH"' EXIT
cd "$SCRATCH"
# apt drops privileges to _apt for downloads; a root-only scratch dir makes it warn, not fail.
apt-get download -q "$PKG" >&2 || { apt-get update -qq >&2 && apt-get download -q "$PKG" >&2; }
dpkg-deb -x ./*.deb x
mod=$(find x/lib/modules -name 'qemu_fw_cfg.ko*' | head -1)
[ -n "$mod" ] || { echo "fetch-kernel: qemu_fw_cfg module not in $PKG" >&2; exit 1; }
case "$mod" in
  *.ko.xz) xz -dc "$mod" > "$CACHE/qemu_fw_cfg-$VER.ko.tmp" ;;
  *.ko.zst) zstd -dc "$mod" > "$CACHE/qemu_fw_cfg-$VER.ko.tmp" ;;
  *) cp "$mod" "$CACHE/qemu_fw_cfg-$VER.ko.tmp" ;;
esac
cp "x/boot/vmlinuz-$VER" "$CACHE/vmlinuz-$VER.tmp"
cp "x/boot/config-$VER" "$CACHE/config-$VER"
mv "$CACHE/qemu_fw_cfg-$VER.ko.tmp" "$CACHE/qemu_fw_cfg-$VER.ko"
mv "$CACHE/vmlinuz-$VER.tmp" "$CACHE/vmlinuz-$VER"
echo "fetch-kernel: cached $(sha256sum "$CACHE/vmlinuz-$VER" | cut -c1-16)… in $CACHE" >&2
echo "$CACHE"
