#!/usr/bin/env bash
# Template of a corpus' local/data.sh (stage 1 of asr.sh): turns the corpus as it lies on
# disk into Kaldi data directories data/<set>/{wav.scp,text,utt2spk,spk2utt}. Copy it
# (egs/TEMPLATE/asr1/setup.sh does) and edit the part marked EDIT to fit your corpus.
#
# As written it reads this layout (common enough to use as is):
#   <corpus_dir>/<set>/<speaker>/<name>.wav     audio (also .flac, .ogg, .sph), one folder per speaker
#   <corpus_dir>/<set>/transcripts.txt          "<name> <words ...>" per line, for labeled sets
# and writes, for every set of --labeled_sets and --unlabeled_sets:
#   wav.scp  "<utt> <path>", or "<utt> sox <path> -t wav -r <rate> -c 1 -b 16 - |" with --sox_rate
#            (any command ending in "|" that writes a WAV to stdout works)
#   text     "<utt> <transcript>"     labeled sets; unlabeled sets keep any transcripts in text.unused
#   utt2spk  "<utt> <speaker>"        utterance ids start with the speaker id, so sorting agrees
#   spk2utt  built from utt2spk
# every file sorted in C order (LC_ALL=C sort), as Kaldi's tools require.
set -euo pipefail

log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') (data.sh:${BASH_LINENO[0]}) $*" >&2; }

corpus_dir=             # where the corpus is
labeled_sets="train dev test"   # folders of <corpus_dir> with transcripts
unlabeled_sets=         # folders with audio only (e.g. "train_unlab"), for semi-supervised methods
sox_rate=               # e.g. 16000: resample on the fly with a sox pipe in wav.scp (empty: plain paths)
case=keep               # keep, upper or lower: the case of the transcripts
data_dir=data

help_message="Usage: $0 --corpus_dir DIR [--labeled_sets \"train dev test\"] [--unlabeled_sets SETS] [--sox_rate N] [--case keep|upper|lower] [--data_dir data]"

[ -f ./path.sh ] && . ./path.sh
. utils/parse_options.sh

if [ $# -ne 0 ] || [ -z "${corpus_dir}" ]; then
  echo "${help_message}" >&2
  exit 1
fi
[ -d "${corpus_dir}" ] || { log "--corpus_dir ${corpus_dir} is not a folder"; exit 1; }
corpus_dir=$(cd "${corpus_dir}" && pwd)  # wav.scp holds absolute paths: data/ may be used from elsewhere
export LC_ALL=C

make_set() {  # make_set <set> <labeled: true|false>
  local set=$1 labeled=$2 src=${corpus_dir}/$1 dst=${data_dir}/$1
  [ -d "${src}" ] || { log "no folder ${src} for set '${set}'"; exit 1; }
  mkdir -p "${dst}"
  # ---- EDIT: how your corpus names audio, speakers and transcripts ------------------
  # One line per audio file: "<utt> <speaker> <path>"; <utt> must start with <speaker>.
  find "${src}" -mindepth 2 -maxdepth 2 -type f \( -name '*.wav' -o -name '*.flac' -o -name '*.ogg' -o -name '*.sph' \) |
    awk -F/ '{ spk = $(NF-1); name = $NF; sub(/\.[^.]*$/, "", name)
               utt = (index(name, spk) == 1) ? name : spk "-" name
               print utt, spk, name, $0 }' | sort > "${dst}/.files"
  # Transcripts keyed by the file name (without extension) in <set>/transcripts.txt.
  local trans=${src}/transcripts.txt
  # ---- end of EDIT ----------------------------------------------------------------
  [ -s "${dst}/.files" ] || { log "no audio files under ${src}/<speaker>/"; exit 1; }
  if [ -n "${sox_rate}" ]; then
    awk -v r="${sox_rate}" '{ print $1, "sox", $4, "-t wav -r", r, "-c 1 -b 16 - |" }' "${dst}/.files"
  else
    awk '{ print $1, $4 }' "${dst}/.files"
  fi > "${dst}/wav.scp"
  awk '{ print $1, $2 }' "${dst}/.files" > "${dst}/utt2spk"
  utils/utt2spk_to_spk2utt.pl "${dst}/utt2spk" > "${dst}/spk2utt"
  local text=${dst}/text
  [ "${labeled}" = true ] || text=${dst}/text.unused  # kept aside: never used for training
  rm -f "${dst}/text" "${dst}/text.unused"
  if [ -f "${trans}" ]; then
    # the name -> utt map, then the transcripts in the chosen case
    awk -v c="${case}" 'NR == FNR { utt[$3] = $1; next }
         { name = $1; $1 = ""; sub(/^ +/, ""); if (c == "upper") $0 = toupper($0); else if (c == "lower") $0 = tolower($0)
           if (name in utt) print utt[name], $0; else missing++ }
         END { if (missing) printf "%d transcript(s) of %s have no audio file\n", missing, FILENAME > "/dev/stderr" }' \
      "${dst}/.files" "${trans}" | sort > "${text}"
  elif [ "${labeled}" = true ]; then
    log "labeled set '${set}' has no ${trans}"; exit 1
  fi
  rm -f "${dst}/.files"
  if [ "${labeled}" = true ]; then utils/validate_data_dir.sh --no-feats "${dst}"
  else utils/validate_data_dir.sh --no-feats --no-text "${dst}"; fi
  log "data/${set}: $(wc -l < "${dst}/wav.scp") utterances, $(wc -l < "${dst}/spk2utt") speakers"
}

for x in ${labeled_sets}; do make_set "${x}" true; done
for x in ${unlabeled_sets}; do make_set "${x}" false; done
log "done: ${data_dir}/{$(echo ${labeled_sets} ${unlabeled_sets} | tr ' ' ',')}"
