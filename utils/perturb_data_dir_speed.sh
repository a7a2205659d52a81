#!/usr/bin/env bash
# Usage: utils/perturb_data_dir_speed.sh <factor> <srcdir> <destdir>
# Ids get the prefix sp<factor>- (utterances, speakers, recordings); wav.scp entries
# play through "sox ... speed <factor> |"; segments and utt2dur are divided by the
# factor; utt2uniq maps back to the original ids; features must be recomputed.
# Resolve symlinks (recipes link utils/ here) so the repo root is found from the real file.
here=$(cd -P "$(dirname "$(readlink -f "${BASH_SOURCE[0]}" 2>/dev/null || echo "${BASH_SOURCE[0]}")")" && pwd)
py=python  # the venv's when path.sh has run; else the repo's own venv
"$py" -c "import bljust" 2>/dev/null || py="$here/../tools/venv/bin/python"
if [ $# -ne 3 ]; then echo "Usage: $0 <factor> <srcdir> <destdir>" >&2; exit 1; fi
exec "$py" -m bljust.bin.data_dir perturb-speed --factors "$1" "$2" "$3"
