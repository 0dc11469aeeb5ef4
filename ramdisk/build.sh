#!/usr/bin/env bash
# Builds the Slipway ramdisk from installed Debian packages: the cloud kernel
# (linux-image-cloud-amd64) and an initramfs (newc cpio, gzip) holding a static busybox
# (busybox-static), the virtio modules with their dependencies and ramdisk/init as /init.
#
#   npm run ramdisk                     # → .cache/ramdisk/{vmlinuz,initramfs.gz,manifest.txt}
#   bash ramdisk/build.sh [OUT_DIR]
#   bash ramdisk/build.sh --force       # rebuild even when the inputs are unchanged
#
# Environment: SLIPWAY_RAMDISK_KVER picks the kernel version (default: the newest installed
# *-cloud-amd64 under /lib/modules); SOURCE_DATE_EPOCH sets every mtime (default 0).
# Reproducible: the same inputs give a byte-identical initramfs (sorted entries, fixed mtimes,
# owners and modes, gzip without name or time).
set -euo pipefail
export LC_ALL=C
umask 022

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
force=
if [ "${1:-}" = --force ]; then force=1; shift; fi
out="${1:-$root/.cache/ramdisk}"
epoch="${SOURCE_DATE_EPOCH:-0}"
log() { printf '==> %s\n' "$*" >&2; }
fail() { printf 'ramdisk: %s\n' "$*" >&2; exit 1; }

# The modules /init loads; their dependencies come from modules.dep.
MODULES=(virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci failover net_failover virtio_net virtio_blk)

kver="${SLIPWAY_RAMDISK_KVER:-}"
if [ -z "$kver" ]; then
  kver="$(ls -1 /lib/modules 2>/dev/null | grep -E -- '-cloud-amd64$' | sort -V | tail -n 1 || true)"
fi
[ -n "$kver" ] || fail "no cloud kernel under /lib/modules: install linux-image-cloud-amd64 (bash scripts/system-packages.sh)"
kernel="/boot/vmlinuz-$kver"
moddir="/lib/modules/$kver"
[ -r "$kernel" ] || fail "$kernel missing or unreadable: install linux-image-cloud-amd64"
[ -r "$moddir/modules.dep" ] || fail "$moddir/modules.dep missing: install linux-image-cloud-amd64"
busybox=/bin/busybox
[ -x "$busybox" ] || fail "$busybox missing: install busybox-static"
file -L "$busybox" 2>/dev/null | grep -q 'statically linked' || ldd "$busybox" 2>&1 | grep -q 'not a dynamic' ||
  fail "$busybox is not statically linked: install busybox-static"
for tool in cpio gzip; do command -v "$tool" >/dev/null || fail "$tool missing: install it (bash scripts/system-packages.sh)"; done

# Everything the output depends on; an unchanged digest means the cached ramdisk is current.
inputs="$(
  {
    echo "$kver $epoch ${MODULES[*]}"
    sha256sum "$here/build.sh" "$here/init" "$here/udhcpc.script" "$busybox" "$kernel" "$moddir/modules.dep"
    cpio --version | head -n 1
    gzip --version | head -n 1
  } | sha256sum | cut -d' ' -f1
)"
if [ -z "$force" ] && [ -f "$out/manifest.txt" ] && [ -f "$out/vmlinuz" ] && [ -f "$out/initramfs.gz" ] &&
  grep -qx "inputs $inputs" "$out/manifest.txt"; then
  log "ramdisk in $out is up to date (inputs $inputs)"
  exit 0
fi

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
tree="$stage/root"
mkdir -p "$tree"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,run,lib/modules}

install -m 0755 "$busybox" "$tree/bin/busybox"
ln -s busybox "$tree/bin/sh"
install -m 0755 "$here/init" "$tree/init"
install -m 0755 "$here/udhcpc.script" "$tree/etc/udhcpc.script"

# Dependencies first: a depth-first walk of modules.dep, each module once.
declare -A deps=() seen=()
while IFS= read -r line; do
  mod="${line%%:*}"
  name="$(basename "$mod")"; name="${name%%.ko*}"; name="${name//-/_}"
  deps[$name]="$mod:${line#*:}"
done < "$moddir/modules.dep"
order=()
visit() {
  local name="$1" entry path dep dname
  [ -n "${seen[$name]:-}" ] && return 0
  seen[$name]=1
  entry="${deps[$name]:-}"
  [ -n "$entry" ] || fail "module $name is not in $moddir/modules.dep (built into the kernel?)"
  path="${entry%%:*}"
  for dep in ${entry#*:}; do
    dname="$(basename "$dep")"; dname="${dname%%.ko*}"; dname="${dname//-/_}"
    visit "$dname"
  done
  order+=("$path")
}
for m in "${MODULES[@]}"; do visit "$m"; done

: > "$tree/lib/modules/load-order"
for path in "${order[@]}"; do
  plain="${path%.xz}"; plain="${plain%.zst}"; plain="${plain%.gz}"
  mkdir -p "$tree/lib/modules/$(dirname "$plain")"
  case "$path" in
    *.xz) xz -dc "$moddir/$path" > "$tree/lib/modules/$plain" ;;
    *.zst) zstd -qdc "$moddir/$path" > "$tree/lib/modules/$plain" ;;
    *.gz) gzip -dc "$moddir/$path" > "$tree/lib/modules/$plain" ;;
    *) cp "$moddir/$path" "$tree/lib/modules/$plain" ;;
  esac
  chmod 0644 "$tree/lib/modules/$plain"
  echo "$plain" >> "$tree/lib/modules/load-order"
done
echo "$kver" > "$tree/etc/slipway-kernel"

# Fixed modes, owners and mtimes; entries in byte order.
find "$tree" -type d -exec chmod 0755 {} +
find "$tree" -exec touch -h -d "@$epoch" {} +
mkdir -p "$out"
(cd "$tree" && find . -mindepth 1 | sort | cpio --quiet -o -H newc --reproducible --owner=0:0) | gzip -9 -n > "$stage/initramfs.gz"
cp "$kernel" "$stage/vmlinuz"
chmod 0644 "$stage/initramfs.gz" "$stage/vmlinuz"
{
  echo "kernel_version $kver"
  echo "source_date_epoch $epoch"
  echo "inputs $inputs"
  echo "modules ${order[*]}"
  (cd "$stage" && sha256sum vmlinuz initramfs.gz)
} > "$stage/manifest.txt"
mv -f "$stage/vmlinuz" "$out/vmlinuz"
mv -f "$stage/initramfs.gz" "$out/initramfs.gz"
mv -f "$stage/manifest.txt" "$out/manifest.txt"
log "ramdisk for $kver in $out ($(du -h "$out/initramfs.gz" | cut -f1) initramfs)"
cat "$out/manifest.txt" >&2
