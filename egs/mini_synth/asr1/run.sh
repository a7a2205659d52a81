#!/usr/bin/env bash
# mini_synth: English speech synthesised on this machine with espeak-ng (many
# voices, speeds, pitches, noise); a low-resource labeled set (500 utterances),
# 4000 unlabeled utterances, speaker-disjoint dev/test. Runs on a CPU in minutes.
#
# Stages 1-8 train BL-JUST (BEST-RQ lower level) and the supervised baseline and
# score both into exp/RESULTS.md. Stage 9 (./run.sh --stage 9 --stop_stage 9) is the
# full evidence at equal encoder passes, 3 seeds a row: supervised only (tuned by a
# 9-point sweep on dev WER), the schedule control, the topline, PT+FT, multitask and
# BL-JUST with BEST-RQ and CPC lower levels, with sc_stats p-values of each BL-JUST row
# against every other row, and the tuned supervised row and the best BL-JUST again at 3x
# the passes, tabulated in exp/compare/RESULTS.md (many hours on 2 cores: RESULTS.md
# beside this file says how many, and has the measured tables).
# A run that scored (stage 8) then packs both models (stage 10) and transcribes one test
# recording with each packed model, as a demonstration of bljust.bin.transcribe.
# Any option of asr.sh may follow, e.g. --stage 6 or --local_data_opts "--tiny true".
set -euo pipefail

opts=(
  --train_set train
  --unlab_set train_unlab
  --valid_set dev
  --test_sets "test"
  --local_data_opts "--nj 2"
  --nj 2 --inference_nj 2
  --token_type bpe --bpemode unigram --nbpe 128
  --asr_configs "conf/train_supervised.yaml conf/train_bljust.yaml"
  --compare_configs "conf/tuning/train_bljust_bestrq_small.yaml conf/tuning/train_bljust_cpc_small.yaml conf/tuning/train_control_small.yaml conf/tuning/train_ptft_bestrq_small.yaml conf/tuning/train_ptft_cpc_small.yaml conf/tuning/train_multitask_bestrq_small.yaml conf/tuning/train_multitask_cpc_small.yaml"
  --compare_reference "conf/tuning/train_bljust_bestrq_small.yaml conf/tuning/train_bljust_cpc_small.yaml"
  --compare_sweeps conf/tuning/sweep_suponly_small.txt
  --compare_topline conf/tuning/train_topline_small.yaml
  --compare_passes 1200 --compare_seeds 3 --compare_budget_scale 3 --compare_nj 2
)
./asr.sh "${opts[@]}" "$@"

# The demonstration after scoring: pack each model, transcribe the first test recording.
stage=1 stop_stage=8
args=("$@")
for ((i = 0; i < ${#args[@]} - 1; i++)); do
  case ${args[i]} in --stage) stage=${args[i + 1]} ;; --stop_stage) stop_stage=${args[i + 1]} ;; esac
done
if [ "${stage}" -le 8 ] && [ "${stop_stage}" -ge 8 ]; then
  ./asr.sh "${opts[@]}" "$@" --stage 10 --stop_stage 10
  . ./path.sh
  head -n 1 data/test/wav.scp > exp/demo_wav.scp
  for zip in exp/asr_*/packed/*.zip; do
    echo "transcribed with ${zip}:"
    python -m bljust.bin.transcribe --model "${zip}" --wav_scp exp/demo_wav.scp
  done
fi
