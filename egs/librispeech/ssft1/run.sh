#!/usr/bin/env bash
# LibriSpeech LASER recipe (docs/laser.md): fine-tune HuBERT-base (or WavLM-base) from a local
# checkpoint on train-clean-100 for 3600 updates on one GPU, and evaluate it SUPERB-style
# before and after (ASR: train-clean-100 / dev-clean / test-clean, WER).
#   ./run.sh --upstream_ckpt /path/to/hubert_base_ls960.pt [--trust_checkpoint true]
#   ./run.sh --upstream_ckpt /path/to/WavLM-Base.pt --upstream_arch wavlm_base --ssft_config conf/ssft_wavlm.yaml
# Phone recognition (--superb_tasks "asr pr") needs data/<set>/text.phn (phonemes from a
# lexicon / G2P, as SUPERB does); LibriSpeech ships no phonemes, so the default is ASR.
# Set LIBRISPEECH to where the corpus is (or should be downloaded to). Any option of
# ssft.sh may follow, e.g. --stage 4.
set -euo pipefail

./ssft.sh \
  --train_set train_clean_100 \
  --valid_set dev_clean \
  --test_sets "test_clean" \
  --local_data_opts "--datadir ${LIBRISPEECH:-downloads} --unlabeled_sets '' --eval_sets 'dev-clean test-clean'" \
  --nj 32 --inference_nj 8 --ngpu 1 \
  --upstream_arch hubert_base \
  --ssft_config conf/ssft_hubert.yaml \
  --superb_tasks "asr" \
  --superb_asr_config conf/superb_asr.yaml \
  --superb_pr_config conf/superb_pr.yaml \
  "$@"
