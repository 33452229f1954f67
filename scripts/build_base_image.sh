#!/bin/sh
# Builds localhost/debian-base:bookworm from Debian packages alone (no container registry):
# a minimal Debian 12 with Python 3.11, the same Python as python:3.11-slim.
# It trusts the CAs this host added to its own store (/usr/local/share/ca-certificates, e.g.
# a TLS-intercepting proxy's), so `pip install` inside a build reaches PyPI as the host does.
# Needs root, debootstrap and podman. Usage: scripts/build_base_image.sh [IMAGE]
set -eu
IMAGE=${1:-localhost/debian-base:bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
ROOTFS=$(mktemp -d /var/tmp/hookline-rootfs.XXXXXX)
trap 'rm -rf "$ROOTFS"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$ROOTFS" "$MIRROR"
if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
    cp /usr/local/share/ca-certificates/*.crt "$ROOTFS/usr/local/share/ca-certificates/"
    chroot "$ROOTFS" update-ca-certificates
fi
# pip (a venv's own copy included) verifies TLS with the system store, not its bundled one.
printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' > "$ROOTFS/etc/pip.conf"
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
tar -C "$ROOTFS" -c . | podman import - "$IMAGE"
