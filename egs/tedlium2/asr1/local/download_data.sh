#!/usr/bin/env bash
# Downloads and extracts TED-LIUM release 2 (openslr 19, about 35 GB) into <datadir>/TEDLIUM_release2.
# Resumable (wget -c / curl -C -); skipped when <datadir>/TEDLIUM_release2/.complete exists.
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "Usage: $0 <datadir> <url-base>    e.g. $0 downloads https://www.openslr.org/resources/19"
  exit 1
fi
datadir=$1; url=$2

mkdir -p "${datadir}"
if [ -f "${datadir}/TEDLIUM_release2/.complete" ]; then
  echo "$0: ${datadir}/TEDLIUM_release2 already present, skipping"
  exit 0
fi
tgz=${datadir}/TEDLIUM_release2.tar.gz
if command -v wget >/dev/null; then
  wget --no-check-certificate -c -O "${tgz}" "${url}/TEDLIUM_release2.tar.gz"
else
  curl -fL -C - -o "${tgz}" "${url}/TEDLIUM_release2.tar.gz"
fi
tar -C "${datadir}" -xzf "${tgz}"
touch "${datadir}/TEDLIUM_release2/.complete"
echo "$0: extracted to ${datadir}/TEDLIUM_release2 (remove ${tgz} to save space)"
