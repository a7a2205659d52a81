#!/usr/bin/env bash
# LibriSpeech: train-clean-100 labeled, train-clean-360 + train-other-500 as unlabeled
# audio, dev/test clean/other for evaluation. Set LIBRISPEECH to where the corpus
# is (or should be downloaded to). Any option of asr.sh may follow, e.g. --stage 6.
#
# Features: stage 3 sees 100.6 h x 3 (speed perturbation) + 860.3 h unlabeled + 21.2 h
# dev/test = 1,183 h of audio, 100 frames/s of 80 fbank bins:
#   --feats_type fbank                  float32 arks, 32 kB/s (4 B x 80 x 100)  ~136 GB
#   --feats_type fbank --compress true  Kaldi compressed arks, ~8.2 kB/s          ~35 GB
#       (the default here)
#   --feats_type raw                    no feature files: the fbank is computed from the
#       corpus' own FLAC when an utterance is loaded (or on the GPU, frontend.on_device);
#       16-bit audio would take 32 kB/s too, but nothing is copied (the ~60 GB of FLAC are
#       read in place; the 0.9/1.1 copies are `sox ... speed` pipes run at load time).
# Compressed arks are the default because BL-JUST reads its labeled and unlabeled
# streams in the training process: with raw input every step would also decode FLAC and
# run sox there (0.08 s wall per 15 s speed-perturbed utterance on our CPU), and the GPU would
# wait. Supervised training reads raw input in loader workers (--trainer.num_workers),
# and raw is the ESPnet2 habit when disk is shared: --feats_type raw switches to it (the
# global CMVN then comes from --cmvn_num_utts utterances of the training set).
set -euo pipefail

./asr.sh \
  --train_set train_clean_100 \
  --unlab_set train_unlab \
  --valid_set dev_clean \
  --test_sets "dev_clean dev_other test_clean test_other" \
  --local_data_opts "--datadir ${LIBRISPEECH:-downloads}" \
  --nj 32 --inference_nj 32 --ngpu 1 \
  --speed_perturb_factors "0.9 1.0 1.1" \
  --feats_type fbank --compress true \
  --token_type bpe --bpemode unigram --nbpe 5000 \
  --max_frames 3000 \
  --asr_configs "conf/train_supervised.yaml conf/train_bljust.yaml" \
  --compare_configs "conf/tuning/train_suponly_librispeech.yaml conf/tuning/train_ptft_cpc_librispeech.yaml conf/tuning/train_multitask_cpc_librispeech.yaml conf/tuning/train_bljust_cpc_librispeech.yaml conf/tuning/train_bljust_cpc_librispeech.yaml:bilevel.reuse_lower_grad=true" \
  --compare_passes 400000 \
  "$@"
