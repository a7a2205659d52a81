#!/usr/bin/env bash
# Puts NIST SCTK's sclite at <prefix>/bin/sclite.
# Order (as Kaldi's and ESPnet's installers do): build from a given source tree or
# tarball; else download the release tarball and build it; else link the system's
# sclite (Debian's 'sctk' package, installed with apt when we are root).
# Usage: install_sctk.sh PREFIX [SRC] [URL] [DRY_RUN]
set -euo pipefail
prefix=$1; src=${2:-}; url=${3:-}; dry_run=${4:-false}
log() { echo "[install_sctk] $*"; }

[ -x "${prefix}/bin/sclite" ] && [ -e "${prefix}/bin/csrfilt.sh" ] && { log "sclite already at ${prefix}/bin/sclite"; exit 0; }
${dry_run} && { log "would install sclite into ${prefix}/bin"; exit 0; }
mkdir -p "${prefix}/bin"

build_from() {  # $1: a source tree
  local tree=$1
  log "building SCTK from ${tree}"
  ( cd "${tree}" && make config >/dev/null && make all >/dev/null && make install >/dev/null ) || return 1
  [ -x "${tree}/bin/sclite" ] || return 1
  cp "${tree}/bin/"* "${prefix}/bin/"
}
from_tarball() {  # $1: a tarball
  local tmp; tmp=$(mktemp -d)
  tar -xf "$1" -C "${tmp}" || return 1
  build_from "$(find "${tmp}" -maxdepth 2 -name makefile -printf '%h\n' | head -n1)"
}

if [ -n "${src}" ]; then
  if [ -d "${src}" ]; then build_from "${src}" && exit 0; else from_tarball "${src}" && exit 0; fi
  log "building from ${src} failed; trying the other ways"
fi
if [ -n "${url}" ] && command -v curl >/dev/null; then
  tarball=$(mktemp --suffix=.tar.gz)
  if curl -fsSL --connect-timeout 5 --max-time 120 -o "${tarball}" "${url}" 2>/dev/null; then
    from_tarball "${tarball}" && exit 0
    log "building the downloaded SCTK failed"
  else
    log "could not download ${url}; using the system's sclite"
  fi
fi

find_system_sclite() {
  command -v sclite 2>/dev/null || { [ -x /usr/lib/sctk/bin/sclite ] && echo /usr/lib/sctk/bin/sclite; } || true
}
sys=$(find_system_sclite)
if [ -z "${sys}" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  log "installing Debian's sctk package"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sctk >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null 2>&1; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sctk >/dev/null 2>&1; } || true
  sys=$(find_system_sclite)
fi
if [ -z "${sys}" ]; then
  echo "[install_sctk] ERROR: no sclite. Give an SCTK source tree or tarball with" \
       "'tools/setup.sh --sctk-src PATH', or install the system package ('sudo apt-get install sctk')," \
       "then run tools/setup.sh again." >&2
  exit 1
fi
# link the whole SCTK bin folder: scoring with a glm needs csrfilt.sh and its rfilter1 too
for f in "$(dirname "${sys}")"/*; do ln -sf "${f}" "${prefix}/bin/$(basename "${f}")"; done
ln -sf "${sys}" "${prefix}/bin/sclite"
log "using the system's SCTK: $(dirname "${sys}") -> ${prefix}/bin"
