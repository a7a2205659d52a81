#!/usr/bin/env bash
# Usage: utils/copy_data_dir.sh [--utt-prefix P] [--utt-suffix S] [--spk-prefix P] [--spk-suffix S]
#                               [--keep-feats] <srcdir> <destdir>
# Utterance affixes also go on recording ids (segments follow); with an utterance
# affix, utt2uniq maps every new id to its original utterance.
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
    --utt-prefix|--utt_prefix|--utt-suffix|--utt_suffix|--spk-prefix|--spk_prefix|--spk-suffix|--spk_suffix)
      args+=("$1" "$2"); shift 2 ;;
    --*=*) args+=("$1"); shift ;;
    --keep-feats|--keep_feats)  # keep the features destdir already has
      keep=true; shift
      case "${1:-}" in true|false) keep=$1; shift ;; esac
      if [ "$keep" = true ]; then args+=(--keep-feats); fi ;;
    --validate-opts|--validate_opts) shift 2 ;;
    --*) echo "$0: unknown option $1" >&2; exit 1 ;;
    *) break ;;
  esac
done
if [ $# -ne 2 ]; then echo "Usage: $0 [--utt-prefix P] [--spk-prefix P] ... <srcdir> <destdir>" >&2; exit 1; fi
exec "$py" -m bljust.bin.data_dir copy "${args[@]}" "$1" "$2"
