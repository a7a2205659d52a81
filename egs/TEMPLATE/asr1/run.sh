#!/usr/bin/env bash
# Template of a corpus' run.sh: the corpus' sets and choices, then every stage of asr.sh.
# Copy it (egs/TEMPLATE/asr1/setup.sh does), set the sets, the sample rate and the configs.
# Any option of asr.sh may follow on the command line, e.g. ./run.sh --stage 3 --force_stage 3.
set -euo pipefail

./asr.sh \
  --train_set train \
  --valid_set dev \
  --test_sets "dev test" \
  --local_data_opts "--corpus_dir ${CORPUS_DIR:-downloads/mycorpus}" \
  --fs 16000 \
  --nj 4 --inference_nj 4 \
  --token_type bpe --bpemode unigram --nbpe 256 \
  --asr_configs "conf/tuning/train_small.yaml" \
  "$@"
# Semi-supervised (BL-JUST): add --unlab_set train_unlab (audio only, see local/data.sh's
# --unlabeled_sets) and a BL-JUST config, e.g. conf/tuning/train_bljust_bestrq_small.yaml.
