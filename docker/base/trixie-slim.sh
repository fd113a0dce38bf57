#!/usr/bin/env bash
# Makes the image docker/encfs/Dockerfile builds FROM, debian:trixie-slim, from Debian's package
# archive with debootstrap, for machines that reach Debian's archive but no container registry
# (the image test's CI machines). Elsewhere, docker or podman pull the official tag instead.
#
#   docker/base/trixie-slim.sh [tag]        (default debian:trixie-slim)
#
# ENCFS_ENGINE is the container engine's command line (default: podman); ENCFS_IMAGE_CACHE is
# where the root file system's tarball is kept between runs (default /var/cache/encfs-image), so
# debootstrap runs once per machine. ENCFS_DEBIAN_MIRROR: the archive (default
# http://deb.debian.org/debian). Needs root and debootstrap (apt-get install debootstrap).
set -euo pipefail
tag="${1:-debian:trixie-slim}"
read -r -a engine <<<"${ENCFS_ENGINE:-podman}"
cache="${ENCFS_IMAGE_CACHE:-/var/cache/encfs-image}"
mirror="${ENCFS_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
tarball="$cache/debian-trixie-slim.tar"
say() { printf 'trixie-slim: %s\n' "$*" >&2; }

if "${engine[@]}" image inspect "$tag" >/dev/null 2>&1; then exit 0; fi
command -v debootstrap >/dev/null || PATH="$PATH:/usr/sbin:/sbin" command -v debootstrap >/dev/null || {
  say "debootstrap is missing: apt-get install debootstrap"
  exit 1
}
mkdir -p "$cache"
# One builder at a time per cache; a second waits and then finds the tarball.
exec 9>"$cache/.trixie-slim.lock"
flock 9
if [ ! -s "$tarball" ]; then
  work=$(mktemp -d "$cache/rootfs.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  say "debootstrap --variant=minbase trixie from $mirror (once per machine; about a minute)"
  start=$SECONDS
  PATH="$PATH:/usr/sbin:/sbin" debootstrap --variant=minbase trixie "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    tail -20 "$work/debootstrap.log" >&2
    say "debootstrap failed (log above)"
    exit 1
  }
  root="$work/root"
  # What the official slim image has: the archive, updates and security suites; no recommends
  # unless asked; no documentation, manual pages or translations from later installs.
  rm -f "$root/etc/apt/sources.list"
  cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: trixie trixie-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirror%/debian}/debian-security
Suites: trixie-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  cat >"$root/etc/dpkg/dpkg.cfg.d/slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
EOF
  printf 'APT::Install-Recommends "false";\n' >"$root/etc/apt/apt.conf.d/90slim"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/*
  find "$root/usr/share/doc" -mindepth 2 ! -name copyright -delete 2>/dev/null || true
  tar --numeric-owner -C "$root" -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
  say "root file system made in $((SECONDS - start)) s: $tarball ($(du -h "$tarball" | cut -f1))"
fi
"${engine[@]}" import --change 'CMD ["bash"]' "$tarball" "$tag" >/dev/null
say "imported $tag"
