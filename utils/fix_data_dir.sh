#!/usr/bin/env bash
# Usage: utils/fix_data_dir.sh <data-dir>
# Keeps only utterances present in every table, re-sorts (LC_ALL=C), regenerates
# spk2utt, logs what was dropped; the old tables are kept in <data-dir>/.backup/.
# Resolve symlinks (recipes link utils/ here) so the repo root is found from the real file.
here=$(cd -P "$(dirname "$(readlink -f "${BASH_SOURCE[0]}" 2>/dev/null || echo "${BASH_SOURCE[0]}")")" && pwd)
# The project's own venv and package, found from this script's real location: never
# whatever `python` comes first on PATH (from the repository root a system python would
# import bljust from the current folder and miss its dependencies).
py="$here/../tools/venv/bin/python"
[ -x "$py" ] || py=python3  # no venv: bljust installed into the python on PATH
export PYTHONPATH="$here/..${PYTHONPATH:+:${PYTHONPATH}}"
while [ $# -gt 0 ]; do
  case "$1" in
    --utt-extra-files|--utt_extra_files|--spk-extra-files|--spk_extra_files) shift 2 ;;  # known tables are all fixed
    --*) echo "$0: unknown option $1" >&2; exit 1 ;;
    *) break ;;
  esac
done
if [ $# -ne 1 ]; then echo "Usage: $0 <data-dir>" >&2; exit 1; fi
exec "$py" -m bljust.bin.data_dir fix "$1"
