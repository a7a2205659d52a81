# Stage 9 of asr.sh (sourced by it): rows of the comparison table, each trained with
# several seeds in <row>/seed<N>/, the topline's training set, and the table itself.
# Uses asr.sh's settings and its train_one, decode_one, score_one and log.

compare_entry() {  # compare_entry <entry>: sets cfg, name, opts (one sweep point: config:key=value:...)
  local entry=$1 kv key val variant=
  cfg=${entry%%:*} name=$(basename "${entry%%:*}" .yaml) opts=()
  [ -f "${cfg}" ] || { log "stage 9: ${cfg} (from entry '${entry}') does not exist"; exit 2; }
  [ "${entry}" != "${cfg}" ] || return 0
  IFS=: read -r -a kvs <<< "${entry#*:}"
  for kv in "${kvs[@]}"; do
    if [[ ${kv} != ?*=?* ]]; then
      log "stage 9: '${kv}' in --compare_configs entry '${entry}' is not key=value"; exit 2
    fi
    key=${kv%%=*} val=${kv#*=}
    opts+=("--${key}" "${val}")
    name+=_${key##*.}-$(printf '%s' "${val}" | tr -c 'A-Za-z0-9.-' '_')
    variant+="${variant:+, }${key##*.}=${val}"
  done
  opts+=(--variant "${variant}")
}

tuned_entry() {  # tuned_entry <entry> <chosen>: prints entry plus each key=value of the chosen sweep point
  # that the entry does not set itself (the topline takes the tuned recipe; its own settings win)
  local entry=$1 chosen=$2 kv kvs=()
  [[ ${chosen} == *:* ]] && IFS=: read -r -a kvs <<< "${chosen#*:}"
  for kv in "${kvs[@]}"; do [[ ${entry} == *":${kv%%=*}="* ]] || entry+=":${kv}"; done
  echo "${entry}"
}

compare_row_dir() {  # compare_row_dir <entry> <passes>: prints the row's folder
  compare_entry "$1"
  echo "${cdir}/p$2/${name}"
}

compare_row() {  # compare_row <entry> <passes> <seed>...: trains each seed (up to --compare_nj at once); sets row
  # (train_dir=<feature dir> row_prefix=<p> compare_row ...: another training set, folder <p><name>)
  local entry=$1 passes=$2 seed exp threads=(); shift 2
  compare_entry "${entry}"
  row=${cdir}/p${passes}/${row_prefix:-}${name}
  [ "${compare_nj}" -gt 1 ] && threads=(--num_threads "$(( $(nproc) / compare_nj > 0 ? $(nproc) / compare_nj : 1 ))")
  for seed in "$@"; do
    exp=${row}/seed${seed}
    [[ " ${pending[*]} " == *" ${exp} "* ]] && continue  # already queued (a row listed twice)
    while [ "$(jobs -rp | wc -l)" -ge "${compare_nj}" ]; do wait -n || true; done
    mkdir -p "${exp}" && rm -f "${exp}/.stage9_rc"
    # the exit status goes to a file: a failed training fails the stage at compare_finish
    ( set +e; ( set -e; train_one "${cfg}" "${exp}" 9 --bilevel.budget_passes "${passes}" --seed "${seed}" "${threads[@]}" \
        "${opts[@]}" ); echo $? > "${exp}/.stage9_rc" ) &
    pending+=("${exp}")
  done
}

compare_finish() {  # waits for the trainings started by compare_row, then decodes and scores them one by one
  local exp failed=0
  wait
  for exp in "${pending[@]}"; do
    [ "$(cat "${exp}/.stage9_rc" 2>/dev/null)" = 0 ] || { log "training ${exp} failed: see ${exp}/train.log"; failed=1; }
  done
  [ "${failed}" = 0 ] || exit 1
  for exp in "${pending[@]}"; do decode_one "${exp}" 9; score_one "${exp}"; rm -f "${exp}/.stage9_rc"; done
  pending=()
}

make_topline() {  # sets topline_set: the labeled and the unlabeled utterances with all their transcripts
  local org=${data_feats}/org text=data/${unlab_set}/text.unused opt=()
  [ -n "${unlab_set}" ] || { log "--compare_topline needs --unlab_set"; exit 2; }
  [ -f "${text}" ] || { log "--compare_topline: ${text} is missing (the unlabeled set's transcripts)"; exit 2; }
  topline_set=${train_set_sp}_and_${unlab_set}
  log "topline set ${data_feats}/${topline_set}: ${train_set_sp} and ${unlab_set} with ${text}"
  rm -rf "${org}/${topline_set}" "${org}/${topline_set}.unlab"
  utils/copy_data_dir.sh "${org}/${unlab_set}" "${org}/${topline_set}.unlab"
  cp "${text}" "${org}/${topline_set}.unlab/text"
  utils/fix_data_dir.sh "${org}/${topline_set}.unlab"  # utterances without a transcript go (and are logged)
  utils/combine_data.sh "${org}/${topline_set}" "${org}/${train_set_sp}" "${org}/${topline_set}.unlab"
  rm -rf "${org}/${topline_set}.unlab"
  [ -n "${min_frames}" ] && opt=(--min_frames "${min_frames}")
  ${python} -m bljust.bin.filter_data --in_dir "${org}/${topline_set}" --out_dir "${data_feats}/${topline_set}" \
    --max_frames "${max_frames}" --subsampling "${subsampling}" "${opt[@]}"
}

tabulate() {  # tabulate <passes> <row>...: <cdir>/p<passes>/RESULTS.md (uses ref_rows, sweeps, tuned_rows, topline_row)
  local passes=$1; shift
  # shellcheck disable=SC2086
  ${python} -m bljust.bin.compare_results --inference_tag "${inference_tag}" \
    --title "Comparison at ${passes} encoder passes, seeds ${seeds}" --significance_sets ${test_sets} \
    "${ref_rows[@]}" "${sweeps[@]}" "${tuned_rows[@]}" ${topline_row:+--topline "${topline_row}"} \
    --out "${cdir}/p${passes}/RESULTS.md" "$@"
}
