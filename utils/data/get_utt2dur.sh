#!/usr/bin/env bash
# Usage: utils/data/get_utt2dur.sh [--nj N] <data-dir>
# Writes <data-dir>/utt2dur (seconds) from segments, or from the audio in wav.scp
# (file headers; pipes are run). Does nothing when utt2dur exists.
# Resolve symlinks (recipes link utils/ here) so the repo root is found from the real file.
here=$(cd -P "$(dirname "$(readlink -f "${BASH_SOURCE[0]}" 2>/dev/null || echo "${BASH_SOURCE[0]}")")" && pwd)
py=python  # the venv's when path.sh has run; else the repo's own venv
"$py" -c "import bljust" 2>/dev/null || py="$here/../../tools/venv/bin/python"
while [ $# -gt 0 ]; do
  case "$1" in
    --nj|--cmd|--read-entire-file|--read_entire_file) shift 2 ;;  # Kaldi options; one process suffices
    --*) echo "$0: unknown option $1" >&2; exit 1 ;;
    *) break ;;
  esac
done
if [ $# -ne 1 ]; then echo "Usage: $0 <data-dir>" >&2; exit 1; fi
exec "$py" -m bljust.bin.data_dir get-utt2dur "$1"
