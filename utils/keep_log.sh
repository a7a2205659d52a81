#!/usr/bin/env bash
# Usage: utils/keep_log.sh <log> <launcher command writing <log>...>
#   e.g. utils/keep_log.sh exp/asr/train.log run.pl --gpu 0 exp/asr/train.log python -m bljust.bin.train ...
# Launchers (run.pl, queue.pl, slurm.pl) start their log afresh. This runs the command and
# then puts the log's earlier content back in front of it, so that the log of a job that is
# rerun (a resumed training, a refused one) keeps its whole history. A rerun killed before it
# could join the two leaves <log>.prev, which the next call joins first. Exits with the
# command's status.
set -uo pipefail
if [ $# -lt 2 ]; then
  echo "Usage: $0 <log> <command...>" >&2
  exit 2
fi
log=$1
shift
mkdir -p "$(dirname "${log}")"
if [ -f "${log}.prev" ]; then
  [ -f "${log}" ] && cat "${log}" >> "${log}.prev"
  rm -f "${log}"
elif [ -f "${log}" ]; then
  mv "${log}" "${log}.prev"
fi
"$@"
rc=$?
if [ -f "${log}.prev" ]; then
  { cat "${log}.prev"; [ -f "${log}" ] && cat "${log}"; } > "${log}.tmp" && mv "${log}.tmp" "${log}" && rm -f "${log}.prev"
fi
exit "${rc}"
