#!/usr/bin/env bash
# The shared staged driver of every bljust ASR recipe (ESPnet's asr.sh is the model).
# A corpus' run.sh calls it with that corpus' sets and configs; every stage reads
# files and writes files, skips what is done, and writes a replayable run.sh into
# its output folder. Heavy stages run as `${cmd} JOB=1:${nj} <log> python -m bljust.bin.<x>`
# so that cmd.sh decides whether they run here (run.pl) or on a cluster
# (queue.pl / slurm.pl).
#
# Stages:
#   1  data preparation                local/data.sh -> data/<set>
#   2  speed perturbation (optional)   data/<train>_sp
#   3  fbank features + CMVN           dump/<kind>/org/<set> (kind: fbank, fbank_compressed or raw)
#   4  filtering (short/long/empty)    dump/<kind>/<set> (training and validation sets only)
#   5  tokenizer and token list        data/token_list/<tag>
#   6  training                        exp/asr_<tag>
#   7  decoding                        exp/asr_<tag>/decode_<inference_tag>/<set>
#   8  scoring with sclite             .../score_{wer,cer,ter}/result.txt, exp/RESULTS.md
#   9  comparison (optional)           exp/compare/p<passes>/<row>/seed<N>, exp/compare/RESULTS.md
#  10  packing (optional)              exp/asr_<tag>/packed/asr_<tag>.zip (bljust.bin.pack)
#
# A stage that is run again skips what is done. Stage 3's marker (dump/fbank/org/<set>/.done)
# and stage 5's (data/token_list/<tag>/train_tokenizer.json) record what they were computed
# from (the data dir's tables by content, the audio files by size and mtime, the options),
# so changed inputs or options rerun them; stage 4 always reruns (it is cheap), stage 7
# redoes a set when the model changed. To force a stage, pass --force_stage N (or "3 5"),
# or delete its marker.
set -euo pipefail

log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') (asr.sh:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*" >&2; }
min() { if [ "$1" -lt "$2" ]; then echo "$1"; else echo "$2"; fi; }
SECONDS=0
run_args=$(printf '%q ' "$0" "$@")

# General
stage=1                 # first stage to run
stop_stage=8            # last stage to run (9, the comparison, runs when asked for)
force_stage=            # stages to redo even when their markers say done, e.g. 3 or "3 5"
nj=4                    # parallel jobs for data and feature stages
inference_nj=4          # parallel jobs for decoding
ngpu=0                  # GPUs for training (0: CPU)
num_nodes=1             # nodes for training (>1: through the cluster's launcher)
dumpdir=dump
expdir=exp
python=python

# Data
local_data_opts=        # options passed to local/data.sh
train_set=              # labeled training set
unlab_set=              # unlabeled set (audio only; used by semi-supervised methods)
valid_set=              # validation set
test_sets=              # sets to decode and score
speed_perturb_factors=  # e.g. "0.9 1.0 1.1" (empty: none)

# Features
feats_type=fbank        # fbank: dump fbank matrices (Kaldi, ESPnet1); raw: keep the audio, compute
                        # the fbank in the data loader or on the GPU (ESPnet2); see the README
compress=false          # fbank only: Kaldi compressed matrices (copy-feats --compress=true), ~4x smaller
cmvn_num_utts=1000      # raw only: global CMVN from this many training utterances (0: all)
fs=16000                # sample rate of the features; audio at another rate fails unless --resample true
resample=false          # true: convert audio at other rates to --fs (false: such utterances fail, with the reason)
fbank_conf=             # YAML of fbank options (default: 80 bins, 25 ms / 10 ms; at 8 kHz 40 bins up to 3.8 kHz)
cmvn_type=global        # global (in the model), speaker or utterance (applied to the dumped features)
max_fail_ratio=0.05     # stage 3 fails (no marker) when more of a set's utterances cannot be read
min_frames=             # drop shorter utterances (default: what the encoder's subsampling needs)
max_frames=3000         # drop longer utterances (10 ms frames)
subsampling=4           # encoder subsampling factor, for the default of min_frames

# Tokens
token_type=bpe          # bpe or char
nbpe=256
bpemode=unigram         # unigram or bpe
bpe_train_text=         # default: data/${train_set}/text

# Training
asr_config=             # training YAML (one experiment)
asr_configs=            # several training YAMLs, one experiment each (default: asr_config)
asr_args=               # extra options for bljust.bin.train, e.g. "--optim.lr 1e-3"
asr_tag=                # experiment name when there is one config (default: the config's name)

# Comparison (stage 9): the methods trained on the same split with the same number
# of encoder forward/backward passes, each with several seeds, decoded, scored, and
# tabulated with mean ± std and sc_stats significance (docs/recipes.md, "Stage 9")
compare_configs=        # rows, e.g. "conf/tuning/train_suponly_small.yaml conf/tuning/train_bljust_cpc_small.yaml";
                        # an entry may carry overrides, one sweep point each:
                        # "conf/tuning/train_bljust_cpc_small.yaml:bilevel.gamma_max=0.3:bilevel.k=2"
compare_passes=3000     # encoder forward/backward passes each method may spend
compare_seeds=1         # seeds per row (0 .. N-1: model init, data order, masking)
compare_sweeps=         # files of sweep points (entries as above, one a line): each point is trained with
                        # seed 0; the best by dev WER becomes a row "(tuned)", trained with every seed
compare_reference=      # entries of compare_configs whose test hypotheses are tested (sc_stats MAPSSWE
                        # and sign test) against every other row's, seed by seed
compare_topline=        # a config entry trained on the labeled and the unlabeled set with the latter's
                        # transcripts (data/<unlab_set>/text.unused): the topline row
compare_topline_tuned=true  # true: the topline also gets the key=value settings the first sweep chose
                        # (the tuned supervised recipe on every transcript); the entry's own win
compare_budget_scale=   # e.g. 3: the tuned rows, the best reference and the topline again at 3x compare_passes
compare_nj=1            # trainings at once (each with nproc / compare_nj threads); decoding stays one at a time

# Decoding
decode_method=beam      # greedy or beam
beam_size=10
decode_batch_size=8
inference_model=model.pth
inference_tag=
score_opts=             # extra options for bljust.bin.score (a set's stm and glm are used when present)

help_message="Usage: $0 --train_set <set> --valid_set <set> --test_sets \"<sets>\" --asr_config <yaml> [options]
Runs stages ${stage}..${stop_stage} of the bljust ASR recipe; see the top of this file for the stages
and every option's default. Common: --stage N --stop_stage N --nj N --ngpu N --fs 8000 --resample true
--cmvn_type global|speaker|utterance. Done stages are skipped; --force_stage N (or \"3 5\") redoes them."

. ./path.sh
. ./cmd.sh
. utils/parse_options.sh

[ $# -eq 0 ] || { log "unexpected arguments: $*"; exit 2; }
last_stage=10
for _opt in stage stop_stage; do
  [[ ${!_opt} =~ ^[0-9]+$ ]] || { log "--${_opt} must be a stage number (1..${last_stage}), got '${!_opt}'"; exit 2; }
done
for _s in ${force_stage}; do
  [[ ${_s} =~ ^[0-9]+$ ]] || { log "--force_stage takes stage numbers, got '${force_stage}'"; exit 2; }
done
case "${cmvn_type}" in global|speaker|utterance) ;;
  *) log "--cmvn_type must be global, speaker or utterance, got '${cmvn_type}'"; exit 2 ;; esac
[[ ${fs} =~ ^[1-9][0-9]*$ ]] || { log "--fs must be a sample rate in Hz, got '${fs}'"; exit 2; }
if [ "${stage}" -gt "${last_stage}" ] || [ "${stop_stage}" -lt 1 ]; then
  log "stages ${stage}..${stop_stage} do not exist: this driver has stages 1..${last_stage} (see the top of asr.sh)"
  exit 2
fi
if [ "${stage}" -gt "${stop_stage}" ]; then
  log "--stage ${stage} is after --stop_stage ${stop_stage}: nothing to run"; exit 2
fi
stop_stage=$(min "${stop_stage}" "${last_stage}")
[ -n "${train_set}" ] && [ -n "${valid_set}" ] || { log "--train_set and --valid_set are required"; exit 2; }

case "${feats_type}:${compress}" in
  fbank:false) data_feats=${dumpdir}/fbank ;;
  fbank:true) data_feats=${dumpdir}/fbank_compressed ;;
  raw:false) data_feats=${dumpdir}/raw ;;
  raw:true) log "--compress true applies to --feats_type fbank (raw input has no feature dump)"; exit 2 ;;
  *) log "--feats_type must be fbank or raw and --compress true or false, got '${feats_type}' and '${compress}'"; exit 2 ;;
esac
if [ "${feats_type}" = raw ] && [ "${cmvn_type}" != global ]; then
  log "--cmvn_type ${cmvn_type} is applied to dumped features: raw input takes global CMVN"; exit 2
fi
[ -n "${speed_perturb_factors}" ] && train_set_sp=${train_set}_sp || train_set_sp=${train_set}
if [ "${token_type}" = char ]; then token_tag=char; else token_tag=${token_type}_${bpemode}${nbpe}; fi
token_dir=data/token_list/${token_tag}
[ -n "${bpe_train_text}" ] || bpe_train_text=data/${train_set}/text
[ -n "${asr_configs}" ] || asr_configs=${asr_config}
if [ -n "${asr_tag}" ] && [ "$(echo ${asr_configs} | wc -w)" -gt 1 ]; then
  log "--asr_tag names one experiment, but --asr_configs has several"; exit 2
fi
exp_of() {  # the experiment folder of a training config
  if [ -n "${asr_tag}" ]; then echo "${expdir}/asr_${asr_tag}"; else echo "${expdir}/asr_$(basename "$1" .yaml)"; fi
}
[ -n "${inference_tag}" ] || inference_tag=decode_${decode_method}$([ "${decode_method}" = beam ] && echo "${beam_size}")_$(basename "${inference_model}" .pth)
fbank_opt=()
[ -n "${fbank_conf}" ] && fbank_opt=(--fbank_conf "${fbank_conf}")

write_replay() {  # write_replay <dir> <stage>: a run.sh in <dir> that reruns this stage as it was run
  mkdir -p "$1"
  {
    echo "#!/usr/bin/env bash"
    echo "# Generated by asr.sh on $(date): reruns stage $2 as it was run. Extra options may follow."
    echo "cd $(printf '%q' "$(pwd)") && ${run_args}--stage $2 --stop_stage $2 \"\$@\"; exit \$?"
  } > "$1/run.sh"
  chmod +x "$1/run.sh"
}
uniq_words() { printf '%s\n' "$@" | awk 'NF && !seen[$0]++'; }
all_sets() { uniq_words "${train_set_sp}" ${unlab_set} "${valid_set}" ${test_sets}; }
eval_sets() { uniq_words "${valid_set}" ${test_sets}; }
stage_on() { [ "${stage}" -le "$1" ] && [ "${stop_stage}" -ge "$1" ]; }
forced() { [[ " ${force_stage} " == *" $1 "* ]]; }

if stage_on 1; then
  log "Stage 1: data preparation (local/data.sh ${local_data_opts})"
  # shellcheck disable=SC2086
  local/data.sh ${local_data_opts}
  for x in ${train_set} ${unlab_set} ${valid_set} ${test_sets}; do
    if [ "${x}" = "${unlab_set}" ]; then utils/validate_data_dir.sh --no-text --no-feats "data/${x}"
    else utils/validate_data_dir.sh --no-feats "data/${x}"; fi
  done
fi

if stage_on 2 && [ -z "${speed_perturb_factors}" ]; then
  log "Stage 2: skipped (no --speed_perturb_factors)"
elif stage_on 2; then
  log "Stage 2: speed perturbation of data/${train_set} by ${speed_perturb_factors}"
  dirs=()
  for f in ${speed_perturb_factors}; do
    if [ "${f}" = 1.0 ] || [ "${f}" = 1 ]; then dirs+=("data/${train_set}"); continue; fi
    utils/perturb_data_dir_speed.sh "${f}" "data/${train_set}" "data/${train_set}_sp${f}"
    dirs+=("data/${train_set}_sp${f}")
  done
  utils/combine_data.sh "data/${train_set_sp}" "${dirs[@]}"
  utils/validate_data_dir.sh --no-feats "data/${train_set_sp}"
fi

if stage_on 3; then
  log "Stage 3: $([ "${feats_type}" = raw ] && echo "raw audio (checked and measured; fbank at load time)" || echo "fbank features$([ "${compress}" = true ] && echo ", compressed")") (${fs} Hz, ${cmvn_type} CMVN) into ${data_feats}/org"
  for x in $(all_sets); do
    out=${data_feats}/org/${x}
    # the marker records the data dir's tables, its audio files' size and mtime, and the options
    stamp=(--files data/${x}/{wav.scp,segments,utt2spk,text,reco2file_and_channel} ${fbank_conf}
           --audio_of "data/${x}/wav.scp" --opt "fs=${fs}" --opt "resample=${resample}"
           --opt "fbank_conf=${fbank_conf}" --opt "cmvn_type=${cmvn_type}" --opt "max_fail_ratio=${max_fail_ratio}"
           --opt "feats_type=${feats_type}" --opt "compress=${compress}")
    if forced 3; then
      log "  ${out}: --force_stage 3: extracting again"; rm -f "${out}/.done" "${out}"/data/*.done
    elif why=$(${python} -m bljust.bin.stage_stamp check "${out}/.done" "${stamp[@]}"); then
      log "  ${out}: already done (same inputs and options)"; continue
    elif [ -f "${out}/.done" ]; then
      log "  ${out}: inputs changed since it was done (${why}): extracting again"
    fi
    rm -f "${out}/.done"
    write_replay "${out}" 3
    _nj=$(min "${nj}" "$(wc -l < "data/${x}/utt2spk")")
    utils/split_data.sh --per-utt "data/${x}" "${_nj}"
    ${train_cmd} JOB=1:"${_nj}" "${out}/log/extract_feats.JOB.log" \
      ${python} -m bljust.bin.extract_feats --data_dir "data/${x}/split${_nj}utt/JOB" \
        --out_dir "${out}/data" --name "feats.JOB" --fs "${fs}" --resample "${resample}" "${fbank_opt[@]}" \
        --feats_type "${feats_type}" --compress "${compress}"
    ${python} -m bljust.bin.extract_feats --merge --data_dir "data/${x}" --out_dir "${out}/data" \
      --nj "${_nj}" --dest "${out}" --fs "${fs}" --resample "${resample}" "${fbank_opt[@]}" \
      --max_fail_ratio "${max_fail_ratio}" --cmvn_type "${cmvn_type}"
    if [ "${cmvn_type}" != global ]; then  # Kaldi's apply-cmvn: every set normalised alike
      mv "${out}/feats.scp" "${out}/feats_raw.scp"
      ${python} -m bljust.bin.compute_cmvn --cmvn_type "${cmvn_type}" --feats_scp "${out}/feats_raw.scp" \
        --utt2spk "${out}/utt2spk" --out "${out}/cmvn_${cmvn_type}.ark" \
        --apply_ark "${out}/data/feats_cmvn.ark" --apply_scp "${out}/feats.scp"
    fi
    ${python} -m bljust.bin.stage_stamp write "${out}/.done" "${stamp[@]}"
  done
  if [ "${feats_type}" = raw ]; then  # the fbank of a sample of the training audio
    cmvn_in=(--data_dir "${data_feats}/org/${train_set_sp}" --num_utts "${cmvn_num_utts}")
  elif [ "${cmvn_type}" = global ] && [ -f "${data_feats}/org/${train_set_sp}/data/feats.cmvn" ]; then
    cmvn_in=(--stats "${data_feats}/org/${train_set_sp}/data/feats.cmvn")  # the jobs' stats, summed by the merge
  else
    cmvn_in=(--feats_scp "${data_feats}/org/${train_set_sp}/feats.scp")
  fi
  ${train_cmd} "${data_feats}/org/${train_set_sp}/log/compute_cmvn.log" \
    ${python} -m bljust.bin.compute_cmvn "${cmvn_in[@]}" --out "${data_feats}/org/${train_set_sp}/cmvn.ark"
fi

if stage_on 4; then
  log "Stage 4: drop utterances too short for x${subsampling} subsampling${min_frames:+ or under ${min_frames} frames}, longer than ${max_frames} frames, or with empty text"
  for x in "${train_set_sp}" ${unlab_set} "${valid_set}"; do
    opts=()
    [ -n "${min_frames}" ] && opts+=(--min_frames "${min_frames}")
    [ "${x}" = "${unlab_set}" ] && opts+=(--no_text)
    ${python} -m bljust.bin.filter_data --in_dir "${data_feats}/org/${x}" --out_dir "${data_feats}/${x}" \
      --max_frames "${max_frames}" --subsampling "${subsampling}" "${opts[@]}"
  done
  cp "${data_feats}/org/${train_set_sp}/cmvn.ark" "${data_feats}/${train_set_sp}/cmvn.ark"
  for x in "${train_set_sp}" ${unlab_set} "${valid_set}"; do  # the feature setup travels with the features
    cp "${data_feats}/org/${x}/feats_conf.yaml" "${data_feats}/${x}/feats_conf.yaml"
  done
fi

if stage_on 5; then
  log "Stage 5: ${token_type} tokenizer from ${bpe_train_text} into ${token_dir}"
  write_replay "${token_dir}" 5
  forced 5 && { log "  --force_stage 5: training the tokenizer again"; rm -f "${token_dir}/train_tokenizer.json"; }
  report=()  # coverage of every labeled set: words and characters the tokenizer maps to <unk>
  for x in $(uniq_words "${train_set}" "${valid_set}" ${test_sets}); do
    [ -f "data/${x}/text" ] && report+=("data/${x}/text")
  done
  ${python} -m bljust.bin.train_tokenizer --text "${bpe_train_text}" --token_type "${token_type}" \
    --bpemode "${bpemode}" --nbpe "${nbpe}" --out_dir "${token_dir}" --report_texts "${report[@]}"
fi

train_one() {  # train_one <config> <exp dir> <stage> [extra options for bljust.bin.train...]
  # (train_dir=<feature dir> train_one ...: train on another labeled set)
  local cfg=$1 exp=$2 st=$3 train=${train_dir:-${data_feats}/${train_set_sp}}; shift 3
  log "training ${exp} with ${cfg} (ngpu=${ngpu}, num_nodes=${num_nodes})"
  write_replay "${exp}" "${st}"
  local unlab_opt=()
  [ -n "${unlab_set}" ] && unlab_opt=(--unlab_data_dir "${data_feats}/${unlab_set}")
  # the launcher starts train.log afresh; keep_log.sh puts the earlier runs' logs back in front
  # shellcheck disable=SC2086
  utils/keep_log.sh "${exp}/train.log" ${cuda_cmd} --gpu "${ngpu}" "${exp}/train.log" \
    ${python} -m bljust.bin.train --config "${cfg}" \
      --train_data_dir "${train}" --valid_data_dir "${data_feats}/${valid_set}" \
      "${unlab_opt[@]}" --token_dir "${token_dir}" --cmvn "${data_feats}/${train_set_sp}/cmvn.ark" \
      --output_dir "${exp}" --ngpu "${ngpu}" --num_nodes "${num_nodes}" ${asr_args} "$@"
}

decode_one() {  # decode_one <exp dir> <stage>
  local exp=$1 st=$2 x dir _nj stamp
  for x in $(eval_sets); do
    dir=${exp}/${inference_tag}/${x}
    # done when the same model (by content) decoded the same features (stage 3's stamp) with the same options
    stamp="$(md5sum < "${exp}/${inference_model}" | cut -d' ' -f1) ${decode_method} ${beam_size} $(wc -l < "${data_feats}/org/${x}/utt2num_frames") $(md5sum < "${data_feats}/org/${x}/.done" | cut -d' ' -f1)"
    if [ -f "${dir}/.done" ] && [ "$(cat "${dir}/.done")" = "${stamp}" ]; then
      log "  ${dir}: already decoded with this model"; continue
    fi
    rm -f "${dir}/.done"
    write_replay "${dir}" "${st}"
    # evaluation sets are decoded unfiltered (from org/): every utterance is scored
    _nj=$(min "${inference_nj}" "$(wc -l < "${data_feats}/org/${x}/utt2num_frames")")
    utils/split_data.sh --per-utt "${data_feats}/org/${x}" "${_nj}"
    ${decode_cmd} JOB=1:"${_nj}" "${dir}/logdir/decode.JOB.log" \
      ${python} -m bljust.bin.decode --model_file "${exp}/${inference_model}" \
        --data_dir "${data_feats}/org/${x}/split${_nj}utt/JOB" --token_dir "${token_dir}" \
        --output_dir "${dir}/logdir/output.JOB" --decode_method "${decode_method}" \
        --beam_size "${beam_size}" --batch_size "${decode_batch_size}"
    ${python} -m bljust.bin.decode --merge --nj "${_nj}" --data_dir "${data_feats}/org/${x}" \
      --output_dir "${dir}"
    echo "${stamp}" > "${dir}/.done"
  done
}

score_one() {  # score_one <exp dir>
  local exp=$1 x opts
  for x in $(eval_sets); do
    opts=()  # a set with an stm (TED-LIUM) is scored against it, through its glm
    [ -f "data/${x}/stm" ] && opts+=(--stm "data/${x}/stm")
    [ -f "data/${x}/glm" ] && opts+=(--glm "data/${x}/glm")
    # shellcheck disable=SC2086
    ${python} -m bljust.bin.score --ref_dir "data/${x}" --hyp_dir "${exp}/${inference_tag}/${x}" \
      --token_dir "${token_dir}" "${opts[@]}" ${score_opts}
  done
  ${python} -m bljust.bin.make_results "${exp}"
}

if stage_on 6 || stage_on 7 || stage_on 8 || stage_on 10; then
  [ -n "${asr_configs}" ] || { log "--asr_config (or --asr_configs) is required for stages 6-8 and 10"; exit 2; }
fi

if stage_on 6; then
  log "Stage 6: training (${asr_configs})"
  for cfg in ${asr_configs}; do train_one "${cfg}" "$(exp_of "${cfg}")" 6; done
fi

if stage_on 7; then
  log "Stage 7: ${decode_method} decoding of $(eval_sets | xargs) with ${inference_model}"
  for cfg in ${asr_configs}; do decode_one "$(exp_of "${cfg}")" 7; done
fi

if stage_on 8; then
  log "Stage 8: scoring with sclite"
  for cfg in ${asr_configs}; do score_one "$(exp_of "${cfg}")"; done
  note=()
  [ -z "${compare_configs}${compare_sweeps}" ] || note=(--note "One seed per model. The evidence for comparing \
methods (several seeds, tuned baselines, the schedule control, sc_stats significance at equal encoder passes) is \
stage 9's table: \`./run.sh --stage 9 --stop_stage 9\` writes ${expdir}/compare/RESULTS.md.")
  ${python} -m bljust.bin.make_results "${expdir}" --out "${expdir}/RESULTS.md" "${note[@]}"
  log "results: ${expdir}/RESULTS.md"
  cat "${expdir}/RESULTS.md"
fi

if stage_on 9; then
  [ -n "${compare_configs}${compare_sweeps}" ] || { log "stage 9 needs --compare_configs (or --compare_sweeps)"; exit 2; }
  [[ ${compare_seeds} =~ ^[1-9][0-9]*$ ]] || { log "--compare_seeds must be a number of seeds (>= 1), got '${compare_seeds}'"; exit 2; }
  [[ ${compare_budget_scale} =~ ^([2-9]|[1-9][0-9]+)?$ ]] || {
    log "--compare_budget_scale must be a whole factor >= 2, got '${compare_budget_scale}'"; exit 2; }
  [[ ${compare_nj} =~ ^[1-9][0-9]*$ ]] || { log "--compare_nj must be >= 1, got '${compare_nj}'"; exit 2; }
  [[ ${compare_topline_tuned} =~ ^(true|false)$ ]] || {
    log "--compare_topline_tuned must be true or false, got '${compare_topline_tuned}'"; exit 2; }
  seeds=$(seq 0 $((compare_seeds - 1)) | xargs)
  cdir=${expdir}/compare
  log "Stage 9: comparison at ${compare_passes} encoder passes each, seeds ${seeds}"
  . "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/compare.sh"  # compare_row, make_topline, tabulate
  rows=() refs=() ref_rows=() sweeps=() tuned_rows=() winners=() topline_row= pending=()
  for f in ${compare_sweeps}; do  # each sweep: its points with seed 0, then the best with every seed
    [ -f "${f}" ] || { log "stage 9: sweep file ${f} does not exist"; exit 2; }
    points=() lst=${cdir}/p${compare_passes}/sweep_$(basename "${f}" .txt).txt
    mapfile -t entries < <(grep -v '^[[:space:]]*\(#\|$\)' "${f}")
    [ ${#entries[@]} -gt 0 ] || { log "stage 9: sweep file ${f} lists no entry"; exit 2; }
    log "sweep ${f}: ${#entries[@]} points, seed 0 each"
    for entry in "${entries[@]}"; do compare_row "${entry}" "${compare_passes}" 0; points+=("${row}"); done
    compare_finish
    mkdir -p "$(dirname "${lst}")" && printf '%s\n' "${points[@]}" > "${lst}"
    best=$(${python} -m bljust.bin.compare_results --inference_tag "${inference_tag}" --pick_best "${valid_set}" "${points[@]}")
    for i in "${!points[@]}"; do [ "${points[i]}" = "${best}" ] && winner=${entries[i]}; done
    log "sweep ${f}: chosen by ${valid_set} WER: ${winner}"
    compare_row "${winner}" "${compare_passes}" ${seeds}
    rows+=("${row}") sweeps+=(--sweep "${lst}") winners+=("${winner}")
  done
  read -r -a entries <<< "${compare_configs}"  # split on blanks without glob expansion ([0.1,0.6,0.3])
  for entry in "${entries[@]}"; do
    compare_row "${entry}" "${compare_passes}" ${seeds}
    rows+=("${row}")
    [[ " ${compare_reference} " == *" ${entry} "* ]] && refs+=("${entry}") && ref_rows+=(--reference "${row}")
  done
  for r in ${compare_reference}; do
    [[ " ${refs[*]} " == *" ${r} "* ]] || { log "--compare_reference ${r} is not an entry of --compare_configs"; exit 2; }
  done
  if [ -n "${compare_topline}" ]; then
    make_topline
    topline=${compare_topline}
    if [ "${compare_topline_tuned}" = true ] && [ ${#winners[@]} -gt 0 ]; then
      topline=$(tuned_entry "${compare_topline}" "${winners[0]}")
      log "topline ${topline}: ${compare_topline} with the settings the sweep chose (${winners[0]})"
    fi
    train_dir=${data_feats}/${topline_set} row_prefix=topline_ compare_row "${topline}" "${compare_passes}" ${seeds}
    rows+=("${row}") topline_row=${row}
  fi
  compare_finish
  tabulate "${compare_passes}" "${rows[@]}"
  tables=("${cdir}/p${compare_passes}/RESULTS.md")
  if [ -n "${compare_budget_scale}" ]; then
    passes=$((compare_passes * compare_budget_scale)) brows=() ref_rows=() sweeps=() tuned_rows=() topline_row=
    for w in "${winners[@]}"; do compare_row "${w}" "${passes}" ${seeds}; brows+=("${row}") tuned_rows+=(--tuned "${row}"); done
    if [ ${#refs[@]} -gt 0 ]; then  # the best reference at the default budget, by mean dev WER
      best_ref=$(${python} -m bljust.bin.compare_results --inference_tag "${inference_tag}" --pick_best "${valid_set}" --pick_mean \
        $(for r in "${refs[@]}"; do compare_row_dir "${r}" "${compare_passes}"; done))
      for r in "${refs[@]}"; do
        [ "$(compare_row_dir "${r}" "${compare_passes}")" = "${best_ref}" ] || continue
        compare_row "${r}" "${passes}" ${seeds}; brows+=("${row}") ref_rows=(--reference "${row}")
      done
    fi
    [ ${#brows[@]} -gt 0 ] || { log "--compare_budget_scale needs --compare_sweeps or --compare_reference rows"; exit 2; }
    if [ -n "${compare_topline}" ]; then  # the topline too: at the default budget it may not have converged
      train_dir=${data_feats}/${topline_set} row_prefix=topline_ compare_row "${topline}" "${passes}" ${seeds}
      brows+=("${row}") topline_row=${row}
    fi
    compare_finish
    tabulate "${passes}" "${brows[@]}"
    tables+=("${cdir}/p${passes}/RESULTS.md")
  fi
  cat "${tables[@]}" > "${cdir}/RESULTS.md.tmp" && mv "${cdir}/RESULTS.md.tmp" "${cdir}/RESULTS.md"
  cat "${cdir}/RESULTS.md"
fi

if stage_on 10; then
  log "Stage 10: packing ${inference_model} of each experiment (weights, config, tokens, features, results)"
  for cfg in ${asr_configs}; do
    exp=$(exp_of "${cfg}")
    ${python} -m bljust.bin.pack --exp_dir "${exp}" --model_file "${inference_model}" --token_dir "${token_dir}" \
      --fs "${fs}" "${fbank_opt[@]}" --out "${exp}/packed/$(basename "${exp}").zip"
  done
fi

log "Successfully finished stages ${stage}..${stop_stage} [elapsed ${SECONDS}s]"
