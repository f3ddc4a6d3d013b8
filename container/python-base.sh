#!/usr/bin/env bash
# Makes a Python base image from Debian packages, for tests of command tasks on an engine that cannot pull:
# debootstrap (minbase, python3 and pip) from this machine's configured Debian mirror, then `docker import`.
# Usage: container/python-base.sh TAG    (does nothing when TAG is already in the engine)
set -euo pipefail
tag="${1:?usage: python-base.sh TAG}"
if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "base image $tag is present"
  exit 0
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi
# The host's own mirror and release, from deb822 sources or the classic sources.list.
mirror="$(grep -hoE '^URIs: *\S+' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -1 | awk '{print $2}')"
[ -n "$mirror" ] || mirror="$(grep -hoE '^deb +\S+' /etc/apt/sources.list 2>/dev/null | grep -v security | head -1 | awk '{print $2}')"
[ -n "$mirror" ] || mirror="http://deb.debian.org/debian"
suite="$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")"
rootfs="$(mktemp -d /var/tmp/grounds-rootfs.XXXXXX)"
trap 'rm -rf "$rootfs"' EXIT
echo "debootstrap $suite from $mirror into $rootfs (python3, pip)"
debootstrap --variant=minbase --include=python3,python3-pip "$suite" "$rootfs" "$mirror" >/dev/null
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
tar -C "$rootfs" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  - "$tag" >/dev/null
echo "base image $tag made"
