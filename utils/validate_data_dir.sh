#!/usr/bin/env bash
# Usage: utils/validate_data_dir.sh [--no-text] [--no-feats] [--no-wav] <data-dir>
# Kaldi's checks: every table C-sorted with unique keys, the same utterances in
# utt2spk/spk2utt/text/segments (or wav.scp)/feats.scp, sane segment times, no
# empty transcript. Reports every problem (first 20 shown) and exits 1 if any.
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
    --no-text|--no-feats|--no-wav) args+=("$1"); shift ;;
    --non-print|--no-spk-sort) shift ;;  # accepted for Kaldi compatibility
    --*) echo "$0: unknown option $1" >&2; exit 1 ;;
    *) break ;;
  esac
done
if [ $# -ne 1 ]; then
  echo "Usage: $0 [--no-text] [--no-feats] [--no-wav] <data-dir>" >&2; exit 1
fi
exec "$py" -m bljust.bin.data_dir validate "${args[@]}" "$1"
