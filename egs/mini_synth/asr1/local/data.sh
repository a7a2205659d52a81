#!/usr/bin/env bash
# Prepares the mini_synth corpus: English sentences from local/grammar.py spoken by
# espeak-ng (8 accents x 50 voice variants = 400 speakers, random rate, pitch, noise
# and level), written as 16 kHz WAV under ${wav_dir} and as Kaldi data dirs
#   data/train        labeled (the low-resource part; --num_train)
#   data/train_unlab  audio only: transcripts kept aside in text.unused / text.phn.unused
#   data/dev data/test
# with text (UPPERCASE words) and text.phn (espeak-ng phonemes). train and
# train_unlab share a speaker pool; dev and test each have their own (all disjoint).
# Nothing is downloaded. The same --seed gives a byte-identical corpus for any --nj;
# a re-run (e.g. after a kill) skips the WAVs already written.
set -euo pipefail

log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') (data.sh:${BASH_LINENO[0]}) $*" >&2; }

seed=1          # corpus seed
nj=2            # synthesis processes
tiny=false      # true: CI sizes (60/120/30/30) for any size not given
num_train=      # labeled utterances (default 500)
num_unlab=      # unlabeled utterances (default 4000)
num_dev=        # default 300
num_test=       # default 300
snr_min=10      # additive white/pink noise, dB
snr_max=30
wav_dir=downloads/mini_synth/wav
data_dir=data

help_message="Usage: $0 [--seed 1] [--nj 2] [--tiny false] [--num_train N] [--num_unlab N] [--num_dev N] [--num_test N] [--snr_min 10] [--snr_max 30] [--wav_dir DIR] [--data_dir data]"

[ -f ./path.sh ] && . ./path.sh
. utils/parse_options.sh

if [ $# -ne 0 ]; then
  echo "${help_message}" >&2
  exit 1
fi

opts=(--seed "${seed}" --nj "${nj}" --snr_min "${snr_min}" --snr_max "${snr_max}"
      --wav_dir "${wav_dir}" --data_dir "${data_dir}")
[ "${tiny}" = true ] && opts+=(--tiny)
[ -n "${num_train}" ] && opts+=(--num_train "${num_train}")
[ -n "${num_unlab}" ] && opts+=(--num_unlab "${num_unlab}")
[ -n "${num_dev}" ] && opts+=(--num_dev "${num_dev}")
[ -n "${num_test}" ] && opts+=(--num_test "${num_test}")

log "synthesising mini_synth (${opts[*]})"
python "$(dirname "$0")/synth.py" "${opts[@]}"

if [ -x utils/validate_data_dir.sh ]; then
  for x in train dev test; do utils/validate_data_dir.sh --no-feats "${data_dir}/${x}"; done
  utils/validate_data_dir.sh --no-text --no-feats "${data_dir}/train_unlab"
fi
log "done: ${data_dir}/{train,train_unlab,dev,test}"
