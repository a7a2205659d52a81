#!/usr/bin/env bash
# Usage: utils/fix_data_dir.sh <data-dir>
# Keeps only utterances present in every table, re-sorts (LC_ALL=C), regenerates
# spk2utt, logs what was dropped; the old tables are kept in <data-dir>/.backup/.
# Resolve symlinks (recipes link utils/ here) so the repo root is found from the real file.
here=$(cd -P "$(dirname "$(readlink -f "${BASH_SOURCE[0]}" 2>/dev/null || echo "${BASH_SOURCE[0]}")")" && pwd)
py=python  # the venv's when path.sh has run; else the repo's own venv
"$py" -c "import bljust" 2>/dev/null || py="$here/../tools/venv/bin/python"
while [ $# -gt 0 ]; do
  case "$1" in
    --utt-extra-files|--utt_extra_files|--spk-extra-files|--spk_extra_files) shift 2 ;;  # known tables are all fixed
    --*) echo "$0: unknown option $1" >&2; exit 1 ;;
    *) break ;;
  esac
done
if [ $# -ne 1 ]; then echo "Usage: $0 <data-dir>" >&2; exit 1; fi
exec "$py" -m bljust.bin.data_dir fix "$1"
