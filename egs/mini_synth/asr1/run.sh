#!/usr/bin/env bash
# mini_synth: English speech synthesised on this machine with espeak-ng (many
# voices, speeds, pitches, noise); a low-resource labeled set (500 utterances),
# 4000 unlabeled utterances, speaker-disjoint dev/test. Runs on a CPU in minutes.
#
# Stages 1-8 train BL-JUST (BEST-RQ lower level) and the supervised baseline and
# score both into exp/RESULTS.md. Stage 9 (./run.sh --stage 9 --stop_stage 9) is the
# full comparison at equal encoder passes: supervised only, PT+FT, multitask and
# BL-JUST with BEST-RQ and CPC lower levels, tabulated in exp/compare/RESULTS.md
# (about an hour on 2 cores). RESULTS.md beside this file has the measured tables and
# the sweep over gamma_max, K, the phase split and the joint-step variant.
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
  --asr_configs "conf/train_supervised.yaml conf/train_bljust.yaml" \
  --compare_configs "conf/tuning/train_suponly_small.yaml conf/tuning/train_ptft_bestrq_small.yaml conf/tuning/train_multitask_bestrq_small.yaml conf/tuning/train_multitask_cpc_small.yaml conf/tuning/train_bljust_bestrq_small.yaml conf/tuning/train_bljust_cpc_small.yaml" \
  --compare_passes 1200 \
  "$@"
