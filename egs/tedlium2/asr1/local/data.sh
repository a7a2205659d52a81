#!/usr/bin/env bash
# TED-LIUM release 2 (openslr 19): download (optional) and Kaldi data dirs under data/:
#   data/dev, data/test, data/train (the labeled part of train), data/train_unlab (the
#   rest, transcripts kept aside as text.unused); dev/test/train also hold the cleaned
#   stm and a glm for scoring. The labeled part is chosen by talks in a fixed order
#   (md5 of the talk id): --labeled_talks N, or --labeled_hours H; both empty = all of train.
set -euo pipefail

datadir=downloads       # holds (or receives) TEDLIUM_release2/
download=true
url=https://www.openslr.org/resources/19
labeled_hours=50
labeled_talks=
train_name=train
unlab_name=train_unlab
out_dir=data
python=python3

log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') (data.sh:${BASH_LINENO[0]}) $*" >&2; }

[ -f ./path.sh ] && . ./path.sh
. utils/parse_options.sh

if [ $# -ne 0 ]; then
  echo "Usage: $0 [--datadir DIR] [--download true|false] [--labeled_hours H | --labeled_talks N]"
  exit 1
fi
if [ -n "${labeled_talks}" ]; then
  labeled_hours=   # talks, when given, win over the default hours
fi

if [ "${download}" = true ]; then
  log "download TED-LIUM release 2"
  local/download_data.sh "${datadir}" "${url}"
fi

log "data preparation from ${datadir}"
"${python}" local/prepare_data.py --corpus_dir "${datadir}" --out_dir "${out_dir}" \
  --labeled_hours "${labeled_hours}" --labeled_talks "${labeled_talks}" \
  --train_name "${train_name}" --unlab_name "${unlab_name}"
log "done"
