#!/usr/bin/env bash
# Usage: utils/data/perturb_data_dir_speed_3way.sh [--always-include-prefix true|false] <srcdir> <destdir>
# Speeds 0.9, 1.0 and 1.1 combined in one directory. The 1.0 copy keeps the original
# ids unless --always-include-prefix true (then it is sp1.0-).
# Resolve symlinks (recipes link utils/ here) so the repo root is found from the real file.
here=$(cd -P "$(dirname "$(readlink -f "${BASH_SOURCE[0]}" 2>/dev/null || echo "${BASH_SOURCE[0]}")")" && pwd)
py=python  # the venv's when path.sh has run; else the repo's own venv
"$py" -c "import bljust" 2>/dev/null || py="$here/../../tools/venv/bin/python"
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --always-include-prefix|--always_include_prefix)
      [ "$2" = true ] && args+=(--always-include-prefix); shift 2 ;;
    --*) echo "$0: unknown option $1" >&2; exit 1 ;;
    *) break ;;
  esac
done
if [ $# -ne 2 ]; then echo "Usage: $0 [--always-include-prefix true|false] <srcdir> <destdir>" >&2; exit 1; fi
exec "$py" -m bljust.bin.data_dir perturb-speed "${args[@]}" --factors 0.9,1.0,1.1 "$1" "$2"
