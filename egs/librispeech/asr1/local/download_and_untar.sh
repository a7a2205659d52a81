#!/usr/bin/env bash
# Downloads and extracts one LibriSpeech part from openslr 12 into <datadir>/LibriSpeech/<part>.
# Resumable (wget -c / curl -C -); a part with <datadir>/LibriSpeech/<part>/.complete is skipped.
# The md5 is checked against openslr's md5sum.txt when that list can be fetched.
set -euo pipefail

if [ $# -ne 3 ]; then
  echo "Usage: $0 <datadir> <url-base> <part>"
  echo "e.g.:  $0 downloads https://www.openslr.org/resources/12 train-clean-100"
  exit 1
fi
datadir=$1; url=$2; part=$3

mkdir -p "${datadir}"
if [ -f "${datadir}/LibriSpeech/${part}/.complete" ]; then
  echo "$0: ${part} already present in ${datadir}/LibriSpeech, skipping"
  exit 0
fi

fetch() {  # fetch <url> <file>: resumes a partial file
  if command -v wget >/dev/null; then
    wget --no-check-certificate -c -O "$2" "$1"
  else
    curl -fL -C - -o "$2" "$1"
  fi
}

tgz=${datadir}/${part}.tar.gz
fetch "${url}/${part}.tar.gz" "${tgz}"

if fetch "${url}/md5sum.txt" "${datadir}/md5sum.txt.part" 2>/dev/null \
    && grep -q " ${part}.tar.gz\$" "${datadir}/md5sum.txt.part"; then
  expected=$(grep " ${part}.tar.gz\$" "${datadir}/md5sum.txt.part" | awk '{print $1}')
  actual=$(md5sum "${tgz}" | awk '{print $1}')
  rm -f "${datadir}/md5sum.txt.part"
  if [ "${expected}" != "${actual}" ]; then
    echo "$0: md5 mismatch for ${tgz} (got ${actual}, want ${expected}); removing it, run again" >&2
    rm -f "${tgz}"
    exit 1
  fi
else
  rm -f "${datadir}/md5sum.txt.part"
  echo "$0: md5sum.txt not available, skipping the md5 check of ${tgz}"
fi

tar -C "${datadir}" -xzf "${tgz}"
touch "${datadir}/LibriSpeech/${part}/.complete"
echo "$0: extracted ${part} to ${datadir}/LibriSpeech/${part}"
