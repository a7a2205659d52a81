#!/usr/bin/env bash
# The LASER study on mini_synth: does LASER fine-tuning make the miniature upstream's
# features better for phone recognition, as the paper reports for HuBERT/WavLM-base?
# One command, one job at a time (each on --num_threads threads), everything under ${expdir}:
#
#   1  data (ssft.sh stage 1)
#   2  pre-train the upstream longer (conf/pretrain_study.yaml: 3600 updates, kept every 300)
#   3  LASER fine-tuning from it with each setting conf/ssft_study_<setting>.yaml
#      (recipe: ssft_mini.yaml as is; lr2e-5: the paper's lr; last1: only the last layer
#      trains; all three 60 updates; paper: the paper's settings and budget, 3600 updates),
#      the upstream kept along the way (upstream.<update>.pth, trainer.upstream_interval)
#   4  the SUPERB PR probe (ssft.sh stage 3: frozen upstream, the same downstream, lr,
#      steps and data; greedy decoding of test, PER with sclite) on every point, in order:
#      the pre-trained upstream and each setting's last update with every seed of --seeds,
#      then the curve over LASER (--points, or every kept upstream; first seed), then the
#      curve over pre-training (--pretrain_points, first seed); then the SUPERB ASR probe
#      (WER) on the pre-trained upstream and each setting of --asr_settings, seeds --asr_seeds,
#      and at the updates --asr_points of those settings (first ASR seed): the WER curve
#   5  ${expdir}/RESULTS.md: the tables (python -m bljust.bin.laser_study)
#
# A probe is exp/laser_study/superb_<point>_s<seed>_<task> (task pr or asr), <point> =
# pre<update> (pre-training), laser0 (the pre-trained upstream LASER starts from) or
# <setting>_u<update>.
# A rerun skips the probes already scored; every training resumes from its checkpoint
# (and ends at once when it is done); --stage/--stop_stage pick stages. About two hours on
# one thread of a shared 2-core CPU (RESULTS.md has the measured wall times and results).
set -euo pipefail

log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') (laser_study.sh:${BASH_LINENO[0]}) $*" >&2; }
SECONDS=0

stage=1
stop_stage=5
expdir=exp/laser_study
num_threads=1                     # torch threads of every job
local_data_opts="--nj 1"          # options of local/data.sh (stage 1)
settings="recipe lr2e-5 last1 paper"  # conf/ssft_study_<setting>.yaml, or YAML paths (setting: the file's name)
points=                           # LASER updates probed besides 0 and the last (first seed only);
                                  # empty: every upstream.<update>.pth the setting kept
pretrain_points="300 1500"        # pre-training updates probed besides the last (first seed only)
seeds="1 2 3"                     # downstream seeds for the before/after comparison
pretrain_config=conf/pretrain_study.yaml
superb_pr_config=conf/superb_pr_mini.yaml
superb_asr_config=conf/superb_asr_mini.yaml
asr_settings="paper"              # settings whose last update also gets the ASR probe (WER); empty: no ASR probe
asr_seeds="1 2 3"                 # downstream seeds of the ASR probe (it and laser0 with each)
asr_points="1200 2400"            # updates of the --asr_settings also ASR-probed (first ASR seed): the WER curve
superb_args="--trainer.valid_interval 250"   # denser validation: is the downstream's dev curve flat at the end?

help_message="Usage: $0 [--stage 1] [--stop_stage 5] [--expdir ${expdir}] [--settings \"${settings}\"] [--points \"${points}\"] [--pretrain_points \"${pretrain_points}\"] [--seeds \"${seeds}\"] [--asr_settings \"${asr_settings}\"] [--asr_seeds \"${asr_seeds}\"] [--asr_points \"${asr_points}\"] [--num_threads 1]"

. ./path.sh
. utils/parse_options.sh
[ $# -eq 0 ] || { echo "${help_message}" >&2; exit 2; }

ssft=(./ssft.sh --train_set train --unlab_set train_unlab --valid_set dev --test_sets test --nj 1 --inference_nj 1
      --expdir "${expdir}" --superb_pr_config "${superb_pr_config}" --superb_asr_config "${superb_asr_config}"
      --pretrain_config "${pretrain_config}")
pre_exp=${expdir}/$(basename "${pretrain_config}" .yaml)
pre_last=$(python -c "import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))['trainer']['max_updates'])" \
           "${pretrain_config}")
stage_on() { [ "${stage}" -le "$1" ] && [ "${stop_stage}" -ge "$1" ]; }
first_seed=${seeds%% *}
declare -A setting_conf=()
names=()
for s in ${settings}; do
  case "${s}" in
    *.yaml|*.yml) c=${s}; s=$(basename "${s%.*}"); s=${s#ssft_study_} ;;
    *) c=conf/ssft_study_${s}.yaml ;;
  esac
  [ -f "${c}" ] || { log "${c} not found (--settings)"; exit 2; }
  setting_conf[${s}]=${c}
  names+=("${s}")
done
for s in ${asr_settings}; do
  [ -n "${setting_conf[${s}]:-}" ] || { log "--asr_settings: ${s} is not one of --settings (${names[*]})"; exit 2; }
done
last_update() { python -c "import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))['trainer']['max_updates'])" \
                  "${setting_conf[$1]}"; }

if stage_on 1; then
  log "Stage 1: data"
  "${ssft[@]}" --stage 1 --stop_stage 1 --local_data_opts "${local_data_opts}"
fi

if stage_on 2; then
  log "Stage 2: pre-training ${pre_exp} (${pretrain_config})"
  "${ssft[@]}" --stage 2 --stop_stage 2 --pretrain_args "--num_threads ${num_threads}"
fi

if stage_on 3; then
  for s in "${names[@]}"; do
    log "Stage 3: LASER ${s} (${setting_conf[${s}]}) from ${pre_exp}/upstream.pth"
    "${ssft[@]}" --stage 4 --stop_stage 4 --upstream_ckpt "${pre_exp}/upstream.pth" \
      --ssft_config "${setting_conf[${s}]}" --ssft_tag "laser_${s}" --ssft_args "--num_threads ${num_threads}"
  done
fi

probe() {  # probe <point> <upstream checkpoint> <seed> [task, default pr]; a probe already scored is skipped
  local task=${4:-pr}
  if [ -f "${expdir}/superb_$1_s$3_${task}/decode_greedy/test/score_wer/result.txt" ]; then
    log "  ${task} probe $1 seed $3: done before"; return 0
  fi
  [ -f "$2" ] || { log "upstream checkpoint $2 not found (is $1 a point that run keeps?)"; exit 1; }
  log "  ${task} probe $1 seed $3 on $2"
  "${ssft[@]}" --superb_tasks "${task}" --stage 3 --stop_stage 3 --upstream_ckpt "$2" --before_tag "$1_s$3" \
    --superb_args "--seed $3 --num_threads ${num_threads} ${superb_args}"
}
curve_points() {  # curve_points <setting>: --points, or the updates of every upstream.<update>.pth it kept
  if [ -n "${points}" ]; then echo "${points}"; return; fi
  local f
  for f in "${expdir}/laser_$1"/upstream.*.pth; do
    [ -f "${f}" ] && f=${f##*/upstream.} && echo "${f%.pth}"
  done | sort -n | xargs
}
if stage_on 4; then
  log "Stage 4: SUPERB PR probes (${superb_pr_config} ${superb_args})"
  for seed in ${seeds}; do
    probe laser0 "${pre_exp}/upstream.pth" "${seed}"
    for s in "${names[@]}"; do probe "${s}_u$(last_update "${s}")" "${expdir}/laser_${s}/upstream.pth" "${seed}"; done
  done
  for s in "${names[@]}"; do
    for u in $(curve_points "${s}"); do
      [ "${u}" = "$(last_update "${s}")" ] || probe "${s}_u${u}" "${expdir}/laser_${s}/upstream.${u}.pth" "${first_seed}"
    done
  done
  for u in ${pretrain_points}; do probe "pre${u}" "${pre_exp}/upstream.${u}.pth" "${first_seed}"; done
  if [ -n "${asr_settings}" ]; then
    log "Stage 4: SUPERB ASR probes (${superb_asr_config} ${superb_args}): laser0 and ${asr_settings}, seeds ${asr_seeds}"
    for seed in ${asr_seeds}; do
      probe laser0 "${pre_exp}/upstream.pth" "${seed}" asr
      for s in ${asr_settings}; do
        probe "${s}_u$(last_update "${s}")" "${expdir}/laser_${s}/upstream.pth" "${seed}" asr
      done
    done
    for s in ${asr_settings}; do
      for u in ${asr_points}; do probe "${s}_u${u}" "${expdir}/laser_${s}/upstream.${u}.pth" "${asr_seeds%% *}" asr; done
    done
  fi
fi

if stage_on 5; then
  log "Stage 5: ${expdir}/RESULTS.md"
  python -m bljust.bin.laser_study --expdir "${expdir}" --pretrain_dir "${pre_exp}" --pretrain_last "${pre_last}" \
    --out "${expdir}/RESULTS.md"
fi
log "Successfully finished stages ${stage}..${stop_stage} [elapsed ${SECONDS}s]"
