#!/usr/bin/env bash
# Creates a new recipe folder from this template (as ESPnet's egs2/TEMPLATE/asr1/setup.sh):
#   egs/TEMPLATE/asr1/setup.sh egs/<corpus>/asr1
# links what every recipe shares (asr.sh, path.sh, utils/, conf/tuning) and copies what
# you edit (run.sh, cmd.sh, local/data.sh). Inside the repository's egs/ the links are
# relative (the repository can move); elsewhere they are absolute.
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "Usage: $0 <new-recipe-dir>   e.g. $0 egs/mycorpus/asr1" >&2; exit 1
fi
template=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
egs=$(dirname "$(dirname "${template}")")
dir=$1
if [ -e "${dir}" ]; then echo "$0: ${dir} already exists" >&2; exit 1; fi
mkdir -p "${dir}/conf" "${dir}/local"
dir=$(cd "${dir}" && pwd)
if [ "$(dirname "$(dirname "${dir}")")" = "${egs}" ]; then
  t=../../TEMPLATE/asr1  # egs/<corpus>/asr1 -> egs/TEMPLATE/asr1
  ln -s "${t}/asr.sh" "${dir}/asr.sh"
  ln -s "${t}/path.sh" "${dir}/path.sh"
  ln -s ../../../utils "${dir}/utils"
  ln -s "../${t}/conf/tuning" "${dir}/conf/tuning"
else
  ln -s "${template}/asr.sh" "${dir}/asr.sh"
  ln -s "${template}/path.sh" "${dir}/path.sh"
  ln -s "$(dirname "${egs}")/utils" "${dir}/utils"
  ln -s "${template}/conf/tuning" "${dir}/conf/tuning"
fi
cp "${template}/run.sh" "${template}/cmd.sh" "${dir}/"
cp "${template}/conf/queue.conf" "${template}/conf/slurm.conf" "${dir}/conf/"
cp "${template}/local/data.sh" "${dir}/local/data.sh"
echo "created ${dir}: edit run.sh (sets, --fs, configs) and local/data.sh (the part marked EDIT), then ./run.sh"
