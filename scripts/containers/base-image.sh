#!/usr/bin/env bash
# The base image every project image starts from, built locally (no image registry needed):
# `debootstrap --variant=minbase bookworm` from this machine's Debian mirror, imported into podman.
#
#   scripts/containers/base-image.sh          build (or reuse) and print the image name
#
# Environment:
#   DEBIAN_MIRROR    default: the Debian mirror apt uses on this machine (/etc/apt/sources.list*)
#   DEBIAN_SUITE     bookworm (its python3 is 3.11, the project's Python)
#   DATATORAG_CACHE  cache root (default ~/.cache/datatorag): the rootfs tarball is kept there,
#                    keyed by the debootstrap arguments, so CI builds it once per machine
# The image is tagged localhost/datatorag-base:<suite>-<key>; the same key means the same
# arguments, so an existing image is reused as is.
set -euo pipefail

log() { echo "base-image.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

detect_mirror() { # the first URI apt uses for the main Debian archive (not security, not 3rd party)
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [[ -f "$f" ]] || continue
    sed -n -e 's#^deb \(\[[^]]*\] \)\{0,1\}\(https\{0,1\}://[^ ]*/debian\)/\{0,1\} .*#\2#p' \
      -e 's#^URIs: *\(https\{0,1\}://[^ ]*/debian\)/\{0,1\}$#\1#p' "$f"
  done | head -n 1
}

SUITE="${DEBIAN_SUITE:-bookworm}"
MIRROR="${DEBIAN_MIRROR:-$(detect_mirror)}"
[[ -n "$MIRROR" ]] || die "no Debian mirror found in /etc/apt/sources.list*; set DEBIAN_MIRROR"
CACHE="${DATATORAG_CACHE:-$HOME/.cache/datatorag}/base"
ARGS=(--variant=minbase --arch=amd64 "$SUITE")
KEY="$(printf '%s\n' "${ARGS[@]}" "$MIRROR" | sha256sum | cut -c1-12)"
IMAGE="localhost/datatorag-base:$SUITE-$KEY"
TARBALL="$CACHE/debian-$SUITE-minbase-$KEY.tar"

command -v podman >/dev/null || die "podman is required (scripts/containers/podman-setup.sh)"
if podman image exists "$IMAGE"; then echo "$IMAGE"; exit 0; fi

if [[ ! -f "$TARBALL" ]]; then
  command -v debootstrap >/dev/null || die "debootstrap is required (apt-get install debootstrap)"
  mkdir -p "$CACHE"
  root="$(mktemp -d "$CACHE/rootfs.XXXXXX")"
  trap 'rm -rf "$root"' EXIT
  log "debootstrap ${ARGS[*]} from $MIRROR (a few minutes, once per machine)"
  debootstrap "${ARGS[@]}" "$root" "$MIRROR" >"$CACHE/debootstrap-$KEY.log" 2>&1 \
    || { tail -n 30 "$CACHE/debootstrap-$KEY.log" >&2; die "debootstrap failed"; }
  # an image, not a machine: no apt caches, no machine identity, apt keeps no package lists
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/tmp/*
  : >"$root/etc/machine-id"
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
    >"$root/etc/apt/apt.conf.d/90datatorag-no-recommends"
  tar --numeric-owner -C "$root" -cf "$TARBALL.tmp" .
  mv "$TARBALL.tmp" "$TARBALL"
fi
log "importing $TARBALL as $IMAGE"
podman import --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' "$TARBALL" "$IMAGE" >/dev/null
podman tag "$IMAGE" "localhost/datatorag-base:$SUITE"
echo "$IMAGE"
