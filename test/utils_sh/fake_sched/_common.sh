# Shared by the fake schedulers used in the launcher tests (sourced, not run).
#
# Environment:
#   FAKE_SCHED_LOG    append each call's argv here, one shell-quoted line
#   FAKE_SCHED_DROP   space-separated task ids never run (a task that "vanishes")
#   FAKE_SCHED_ASYNC  1: run tasks in the background (submit returns at once);
#                     needs FAKE_SCHED_DIR, where alive.<task> files mark tasks
#                     still running (what the fake squeue/qstat report)
#   FAKE_SCHED_FAIL_SUBMIT  1: the submit command fails
#   FAKE_SCHED_JOBID  job id to print (default 123)

fake_record() {
  [ -n "${FAKE_SCHED_LOG:-}" ] || return 0
  { printf '%s' "$(basename "$0")"; printf ' %q' "$@"; echo; } >> "${FAKE_SCHED_LOG}"
}

# fake_run_tasks <first> <last> <script> <output-pattern> <task-var> <jobid-var> <jobid>
# Output pattern: %a = task id, %A / %j = job id.
fake_run_tasks() {
  local first=$1 last=$2 script=$3 out=$4 tvar=$5 jvar=$6 jobid=$7 t o
  for ((t = first; t <= last; t++)); do
    case " ${FAKE_SCHED_DROP:-} " in *" $t "*) continue ;; esac
    o=${out//%a/$t}; o=${o//%A/$jobid}; o=${o//%j/$jobid}
    if [ "${FAKE_SCHED_ASYNC:-0}" = 1 ]; then
      touch "${FAKE_SCHED_DIR:?FAKE_SCHED_DIR must be set}/alive.$t"
      ( env "$tvar=$t" "$jvar=$jobid" bash "$script" >> "$o" 2>&1
        rm -f "${FAKE_SCHED_DIR}/alive.$t" ) < /dev/null > /dev/null 2>&1 &
    else
      env "$tvar=$t" "$jvar=$jobid" bash "$script" >> "$o" 2>&1 < /dev/null
    fi
  done
}

# Task ids still running in async mode, one a line.
fake_alive_tasks() {
  local f
  [ -n "${FAKE_SCHED_DIR:-}" ] || return 0
  for f in "${FAKE_SCHED_DIR}"/alive.*; do
    [ -e "$f" ] && echo "${f##*.}"
  done
  return 0
}
