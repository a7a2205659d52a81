#!/usr/bin/env bash
# Usage: utils/perturb_data_dir_speed.sh <factor> <srcdir> <destdir>
# Ids get the prefix sp<factor>- (utterances, speakers, recordings); wav.scp entries
# play through "sox ... speed <factor> |"; segments and utt2dur are divided by the
# factor; utt2uniq maps back to the original ids; features must be recomputed.
# Resolve symlinks (recipes link utils/ here) so the repo root is found from the real file.
here=$(cd -P "$(dirname "$(readlink -f "${BASH_SOURCE[0]}" 2>/dev/null || echo "${BASH_SOURCE[0]}")")" && pwd)
# The project's own venv and package, found from this script's real location: never
# whatever `python` comes first on PATH (from the repository root a system python would
# import bljust from the current folder and miss its dependencies).
py="$here/../tools/venv/bin/python"
[ -x "$py" ] || py=python3  # no venv: bljust installed into the python on PATH
export PYTHONPATH="$here/..${PYTHONPATH:+:${PYTHONPATH}}"
if [ $# -ne 3 ]; then echo "Usage: $0 <factor> <srcdir> <destdir>" >&2; exit 1; fi
exec "$py" -m bljust.bin.data_dir perturb-speed --factors "$1" "$2" "$3"
