#!/usr/bin/env bash
# Builds the test guest: a small disk image that KubeVirt boots as a containerDisk under
# software emulation in seconds, and that answers HTTP on port 80 with its own hostname.
#
#   hack/guest-image.sh OUT_DIR
#
# Everything comes from Debian: the kernel from the package linux-image-cloud-amd64 depends on
# (downloaded with apt-get download and unpacked, never installed on this machine), busybox
# from busybox-static, the bootloader from syslinux. The disk is a FAT file system with
# syslinux in its boot sector (SeaBIOS boots it like a partitioned disk), the kernel, and an
# initramfs whose /init loads the virtio network modules, asks every interface for an
# address by DHCP (KubeVirt's masquerade and bridge bindings answer with the VM's address and
# its hostname), and serves /index.html = the hostname with busybox httpd. The guest ignores
# cloud-init: it is a test guest, not a distribution. Writes OUT_DIR/disk.img and
# OUT_DIR/kernel-version; the console prints "pcloud-guest ready <hostname> <addresses>".
set -euo pipefail
OUT=$1
ROOT=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/pcloud-guest-$$.XXXXXX")
trap 'rm -rf "$work"' EXIT

kpkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
[ -n "$kpkg" ] || { echo "guest-image: no kernel package behind linux-image-cloud-amd64" >&2; exit 1; }
(cd "$work" && apt-get download -q "$kpkg" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2 || true)
deb=$(ls "$work"/linux-image-*.deb)
dpkg-deb -x "$deb" "$work/k"
kver=${kpkg#linux-image-}
mods="$work/k/lib/modules/$kver/kernel"

# initramfs: busybox, the virtio network modules in load order, /init and the DHCP hook.
rd="$work/rd"
mkdir -p "$rd"/{bin,dev,proc,sys,www,modules}
cp /bin/busybox "$rd/bin/busybox"
order=()
add_module() { # adds $1 after its dependencies (the depends= field of the .ko's .modinfo)
  local name=$1 f dep deps
  for m in "${order[@]}"; do [ "$m" = "$name" ] && return; done
  f=$(find "$mods" -name "$name.ko" | head -1)
  [ -n "$f" ] || { echo "guest-image: module $name not in $kpkg" >&2; exit 1; }
  deps=$(grep -a -o 'depends=[a-z0-9_,-]*' "$f" | head -1 | cut -d= -f2 | tr ',' ' ')
  for dep in $deps; do add_module "$dep"; done
  cp "$f" "$rd/modules/$name.ko"
  order+=("$name")
}
add_module virtio_pci
add_module virtio_net
printf '%s\n' "${order[@]}" > "$rd/modules/order"
cp "$ROOT/hack/guest/init" "$rd/init"
cp "$ROOT/hack/guest/udhcpc.sh" "$rd/udhcpc.sh"
chmod 0755 "$rd/init" "$rd/udhcpc.sh" "$rd/bin/busybox"
find "$rd" -exec touch -h -d @946684800 {} +
(cd "$rd" && find . | LC_ALL=C sort | cpio --quiet -o -H newc --reproducible --owner=0:0) | gzip -9n > "$work/initrd"

# The disk: FAT with syslinux, the kernel, the initramfs and syslinux.cfg.
cat > "$work/syslinux.cfg" <<'EOF'
SERIAL 0 115200
DEFAULT guest
PROMPT 0
TIMEOUT 0
LABEL guest
  KERNEL /vmlinuz
  INITRD /initrd
  APPEND console=ttyS0 panic=-1 quiet
EOF
cp "$work/k/boot/vmlinuz-$kver" "$work/vmlinuz"
touch -d @946684800 "$work/vmlinuz" "$work/initrd" "$work/syslinux.cfg"
rm -f "$work/disk.img"
/sbin/mkfs.vfat --invariant -n PCGUEST -C "$work/disk.img" 32768 >/dev/null
syslinux --install "$work/disk.img"
mcopy -m -i "$work/disk.img" "$work/vmlinuz" "$work/initrd" "$work/syslinux.cfg" ::/
mkdir -p "$OUT"
mv "$work/disk.img" "$OUT/disk.img"
echo "$kpkg $(dpkg-deb -f "$deb" Version)" > "$OUT/kernel-version"
