#!/usr/bin/env bash
# mini_synth: English speech synthesised on this machine with espeak-ng (many
# voices, speeds, pitches, noise); a low-resource labeled set, thousands of
# unlabeled utterances, speaker-disjoint dev/test. Runs on a CPU in minutes.
# Any option of asr.sh may follow, e.g. --stage 6 or --local_data_opts "--tiny true".
set -euo pipefail

./asr.sh \
  --train_set train \
  --unlab_set train_unlab \
  --valid_set dev \
  --test_sets "test" \
  --local_data_opts "--nj 2" \
  --nj 2 --inference_nj 2 \
  --token_type bpe --bpemode unigram --nbpe 128 \
  --asr_config conf/train.yaml \
  "$@"
