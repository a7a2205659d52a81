#!/usr/bin/env bash
# LibriSpeech (openslr 12): download (optional) and Kaldi data dirs under data/.
#   labeled sets   -> data/<set with underscores>   (train_clean_100)
#   eval sets      -> data/dev_clean data/dev_other data/test_clean data/test_other
#   unlabeled sets -> one data/train_unlab, transcripts kept aside as text.unused
set -euo pipefail

datadir=downloads       # holds (or receives) LibriSpeech/<set>
download=true
url=https://www.openslr.org/resources/12
labeled_sets="train-clean-100"
unlabeled_sets="train-clean-360 train-other-500"
eval_sets="dev-clean dev-other test-clean test-other"
unlab_name=train_unlab
out_dir=data
python=python3

log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') (data.sh:${BASH_LINENO[0]}) $*" >&2; }

[ -f ./path.sh ] && . ./path.sh
. utils/parse_options.sh

if [ $# -ne 0 ]; then
  echo "Usage: $0 [--datadir DIR] [--download true|false] [--labeled_sets \"...\"] [--unlabeled_sets \"...\"] [--eval_sets \"...\"]"
  exit 1
fi

if [ "${download}" = true ]; then
  for part in ${labeled_sets} ${unlabeled_sets} ${eval_sets}; do
    log "download ${part}"
    local/download_and_untar.sh "${datadir}" "${url}" "${part}"
  done
fi

log "data preparation from ${datadir}"
"${python}" local/data_prep.py --corpus_dir "${datadir}" --out_dir "${out_dir}" \
  --labeled_sets "${labeled_sets}" --unlabeled_sets "${unlabeled_sets}" \
  --eval_sets "${eval_sets}" --unlab_name "${unlab_name}"
log "done"
