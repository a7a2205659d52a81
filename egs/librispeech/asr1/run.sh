#!/usr/bin/env bash
# LibriSpeech: train-clean-100 labeled, train-clean-360 + train-other-500 as unlabeled
# audio, dev/test clean/other for evaluation. Set LIBRISPEECH to where the corpus
# is (or should be downloaded to). Any option of asr.sh may follow, e.g. --stage 6.
set -euo pipefail

./asr.sh \
  --train_set train_clean_100 \
  --unlab_set train_unlab \
  --valid_set dev_clean \
  --test_sets "dev_clean dev_other test_clean test_other" \
  --local_data_opts "--datadir ${LIBRISPEECH:-downloads}" \
  --nj 32 --inference_nj 32 --ngpu 1 \
  --speed_perturb_factors "0.9 1.0 1.1" \
  --token_type bpe --bpemode unigram --nbpe 5000 \
  --max_frames 3000 \
  --asr_configs "conf/train_supervised.yaml conf/train_bljust.yaml" \
  --compare_configs "conf/tuning/train_suponly_librispeech.yaml conf/tuning/train_ptft_cpc_librispeech.yaml conf/tuning/train_multitask_cpc_librispeech.yaml conf/tuning/train_bljust_cpc_librispeech.yaml conf/tuning/train_bljust_cpc_librispeech.yaml:bilevel.reuse_lower_grad=true" \
  --compare_passes 400000 \
  "$@"
