#!/usr/bin/env bash
# mini_synth LASER recipe: pre-train a tiny HuBERT-style upstream on the corpus' audio,
# evaluate it SUPERB-style (ASR WER, phone error rate), LASER fine-tune it, evaluate
# again, and tabulate before/after in exp/RESULTS.md. About 25 minutes on 2 CPU cores.
# `./run.sh --tiny true` runs every stage at CI size in a few minutes. Any option of
# ssft.sh may follow, e.g. --stage 4 or --upstream_ckpt path/to/hubert_base.pt.
# ./laser_study.sh is the longer study (docs/laser.md): the PR probe along pre-training and
# along LASER fine-tuning in three settings, with 3 downstream seeds; results in RESULTS.md.
set -euo pipefail

tiny=false
if [ "${1:-}" = --tiny ]; then tiny=$2; shift 2; fi
if [ "${tiny}" = true ]; then size=tiny; data_opts="--nj 2 --tiny true"; else size=mini; data_opts="--nj 2"; fi

./ssft.sh \
  --train_set train \
  --unlab_set train_unlab \
  --valid_set dev \
  --test_sets "test" \
  --local_data_opts "${data_opts}" \
  --nj 2 --inference_nj 2 \
  --pretrain_config conf/pretrain_${size}.yaml \
  --ssft_config conf/ssft_${size}.yaml \
  --superb_asr_config conf/superb_asr_${size}.yaml \
  --superb_pr_config conf/superb_pr_${size}.yaml \
  "$@"
