#!/usr/bin/env bash
# Usage: utils/subset_data_dir.sh [--first|--last|--shortest] <srcdir> <num-utt> <destdir>
#        utils/subset_data_dir.sh --utt-list <file> <srcdir> <destdir>
#        utils/subset_data_dir.sh --spk-list <file> <srcdir> <destdir>
# Without a mode flag, <num-utt> utterances spread evenly over the list are taken.
# "--first N <srcdir> <destdir>" (number right after the flag) works too.
# Resolve symlinks (recipes link utils/ here) so the repo root is found from the real file.
here=$(cd -P "$(dirname "$(readlink -f "${BASH_SOURCE[0]}" 2>/dev/null || echo "${BASH_SOURCE[0]}")")" && pwd)
# The project's own venv and package, found from this script's real location: never
# whatever `python` comes first on PATH (from the repository root a system python would
# import bljust from the current folder and miss its dependencies).
py="$here/../tools/venv/bin/python"
[ -x "$py" ] || py=python3  # no venv: bljust installed into the python on PATH
export PYTHONPATH="$here/..${PYTHONPATH:+:${PYTHONPATH}}"
mode=num; num=; list=()
while [ $# -gt 0 ]; do
  case "$1" in
    --first|--last|--shortest)
      mode=${1#--}; shift
      if [[ $# -gt 0 && "$1" =~ ^[0-9]+$ ]]; then num=$1; shift; fi ;;
    --utt-list|--utt_list|--spk-list|--spk_list) list=("$1" "$2"); shift 2 ;;
    --per-spk|--speakers) echo "$0: $1 is not supported" >&2; exit 1 ;;
    --*) echo "$0: unknown option $1" >&2; exit 1 ;;
    *) break ;;
  esac
done
if [ ${#list[@]} -gt 0 ] && [ $# -eq 2 ]; then
  exec "$py" -m bljust.bin.data_dir subset "${list[@]}" "$1" "$2"
elif [ $# -eq 3 ] && [ -z "$num" ]; then
  exec "$py" -m bljust.bin.data_dir subset --$mode "$2" "$1" "$3"
elif [ $# -eq 2 ] && [ -n "$num" ]; then
  exec "$py" -m bljust.bin.data_dir subset --$mode "$num" "$1" "$2"
fi
echo "Usage: $0 [--first|--last|--shortest] <srcdir> <num-utt> <destdir>" >&2
echo "       $0 --utt-list <file> | --spk-list <file> <srcdir> <destdir>" >&2
exit 1
