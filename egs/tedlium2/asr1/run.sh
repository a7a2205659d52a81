#!/usr/bin/env bash
# TED-LIUM release 2: a labeled subset of train (--labeled_hours in local/data.sh),
# the rest of train as unlabeled audio, dev and test scored against the stm.
# Set TEDLIUM2 to where the corpus is (or should be downloaded to).
#
# Features: stage 3 sees 50 h x 3 (speed perturbation) + ~157 h unlabeled + 4.2 h dev/test
# = ~311 h of audio (TED-LIUM 2 has 207 h of training talks):
#   --feats_type fbank                  float32 arks, 32 kB/s  ~36 GB
#   --feats_type fbank --compress true  (the default here)     ~9 GB
#   --feats_type raw                    no feature files (16-bit audio: 32 kB/s, read in place)
# Compressed arks are the default: utterances are segments of 10-20 minute talks, and the
# speed-perturbed talks are `sox ... speed` pipes, which raw input would have to decode
# whole for every segment it loads; 9 GB of compressed fbank avoids that for good.
set -euo pipefail

./asr.sh \
  --train_set train \
  --unlab_set train_unlab \
  --valid_set dev \
  --test_sets "dev test" \
  --local_data_opts "--datadir ${TEDLIUM2:-downloads} --labeled_hours 50" \
  --nj 32 --inference_nj 32 --ngpu 1 \
  --speed_perturb_factors "0.9 1.0 1.1" \
  --feats_type fbank --compress true \
  --token_type bpe --bpemode unigram --nbpe 500 \
  --max_frames 3000 \
  --asr_configs "conf/train_supervised.yaml conf/train_bljust.yaml" \
  --compare_configs "conf/tuning/train_suponly_librispeech.yaml conf/tuning/train_ptft_cpc_librispeech.yaml conf/tuning/train_multitask_cpc_librispeech.yaml conf/tuning/train_bljust_cpc_librispeech.yaml conf/tuning/train_bljust_cpc_librispeech.yaml:bilevel.reuse_lower_grad=true" \
  --compare_passes 400000 \
  "$@"
