#!/usr/bin/env bash
# Usage: utils/split_data.sh [--per-utt] <data-dir> <num-to-split>
# Writes <data-dir>/split<N>/{1..N} (whole speakers per part, balanced by utterance
# count) or, with --per-utt, <data-dir>/split<N>utt/{1..N}. Up-to-date splits are kept.
# Resolve symlinks (recipes link utils/ here) so the repo root is found from the real file.
here=$(cd -P "$(dirname "$(readlink -f "${BASH_SOURCE[0]}" 2>/dev/null || echo "${BASH_SOURCE[0]}")")" && pwd)
# The project's own venv and package, found from this script's real location: never
# whatever `python` comes first on PATH (from the repository root a system python would
# import bljust from the current folder and miss its dependencies).
py="$here/../tools/venv/bin/python"
[ -x "$py" ] || py=python3  # no venv: bljust installed into the python on PATH
export PYTHONPATH="$here/..${PYTHONPATH:+:${PYTHONPATH}}"
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --per-utt) args+=(--per-utt); shift ;;
    --*) echo "$0: unknown option $1" >&2; exit 1 ;;
    *) break ;;
  esac
done
if [ $# -ne 2 ]; then echo "Usage: $0 [--per-utt] <data-dir> <num-to-split>" >&2; exit 1; fi
exec "$py" -m bljust.bin.data_dir split "${args[@]}" "$1" "$2"
