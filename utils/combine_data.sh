#!/usr/bin/env bash
# Usage: utils/combine_data.sh <dest-data-dir> <src-data-dir1> <src-data-dir2> ...
# A duplicate utterance id is an error naming both sources. Optional tables that
# only some sources have are dropped (with a warning); segments and utt2uniq are
# filled in for the sources without them, as Kaldi does.
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
    --extra-files|--extra_files|--skip-fix|--skip_fix) shift 2 ;;  # Kaldi options; known tables are all combined
    --*) echo "$0: unknown option $1" >&2; exit 1 ;;
    *) break ;;
  esac
done
if [ $# -lt 2 ]; then echo "Usage: $0 <dest-data-dir> <src-data-dir1> ..." >&2; exit 1; fi
exec "$py" -m bljust.bin.data_dir combine "$@"
