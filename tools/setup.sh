#!/usr/bin/env bash
# Sets up everything bljust needs, under tools/ (ESPnet's tools/ is the model):
#   tools/venv            Python venv with torch, torchaudio, kaldiio, sentencepiece, ...
#                         and bljust itself in editable mode
#   tools/sctk/bin/sclite NIST SCTK's scorer (built from source, or the system package)
#   espeak-ng, sox        system programs used by the mini_synth corpus
# Run it again at any time: when everything is in place it says so and does nothing.
#
# Usage: tools/setup.sh [options]
#   --python PY            interpreter the venv is made from (default: python3)
#   --torch-version V      torch to install when the venv has none (default: 2.13.0)
#   --system-site-packages make the venv see the system's packages, so that a torch
#                          already installed there (a GPU build, say) is kept
#   --sctk-src PATH        SCTK source tree or tarball to build sclite from
#   --sctk-url URL         where to download an SCTK tarball from (tried once, briefly)
#   --bench                also install the peers that test/bench/*.py compare against
#                          (kaldi-native-fbank, tslearn, pysdtw, flashlight-text), under
#                          the same torch constraint; without them a bench prints only ours
#   --dry-run              print every pip command instead of running it
#   --force                redo every step even when the stamp says it is done
set -euo pipefail

tools_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root_dir=$(dirname "${tools_dir}")
python=python3
torch_version=2.13.0
system_site=false
sctk_src=
sctk_url=https://github.com/usnistgov/SCTK/archive/refs/tags/v2.4.12.tar.gz
dry_run=false
force=false
bench=false
venv=${tools_dir}/venv

while [ $# -gt 0 ]; do
  case "$1" in
    --python) python=$2; shift 2 ;;
    --torch-version) torch_version=$2; shift 2 ;;
    --system-site-packages) system_site=true; shift ;;
    --sctk-src) sctk_src=$2; shift 2 ;;
    --sctk-url) sctk_url=$2; shift 2 ;;
    --venv) venv=$2; shift 2 ;;
    --bench) bench=true; shift ;;
    --dry-run) dry_run=true; shift ;;
    --force) force=true; shift ;;
    -h|--help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "$0: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done

log() { echo "[tools/setup.sh] $*"; }
die() { echo "[tools/setup.sh] ERROR: $*" >&2; exit 1; }

# Everything that decides what gets installed goes into the stamp; when it is
# unchanged and every check passes, a second run is a no-op.
stamp=${venv}/.bljust-setup.stamp
fingerprint() {
  cat "${tools_dir}/setup.sh" "${tools_dir}"/installers/* "${root_dir}/setup.py" 2>/dev/null | sha1sum | cut -d' ' -f1
}
all_present() {
  [ -f "${stamp}" ] && [ "$(cat "${stamp}")" = "$(fingerprint)" ] || return 1
  "${venv}/bin/python" -c 'import torch, torchaudio, kaldiio, sentencepiece, yaml, typeguard, humanfriendly, soundfile, numpy, matplotlib, tensorboard, pytest, bljust' 2>/dev/null || return 1
  [ -x "${tools_dir}/sctk/bin/sclite" ] || return 1
  command -v espeak-ng >/dev/null && command -v sox >/dev/null || return 1
}
# The benchmarks' peers: what each bench in test/bench/ times ours against.
#   kaldi-native-fbank  bench_feats.py     (fbank, k2/sherpa's C++ implementation)
#   tslearn             bench_softdtw.py   (soft-DTW on CPU; brings numba, scikit-learn)
#   pysdtw              bench_softdtw.py   (soft-DTW on CUDA, numba kernels)
#   flashlight-text     bench_decode.py    (enables torchaudio's ctc_decoder)
# bench_train.py's peer is torchaudio's Conformer, installed below anyway.
bench_peers=(kaldi-native-fbank tslearn pysdtw flashlight-text)
bench_imports="import kaldi_native_fbank, tslearn.metrics, pysdtw, flashlight.lib.text"
if ! ${force} && ! ${dry_run} && all_present; then
  if ! ${bench}; then
    log "everything is already installed (tools/venv, tools/sctk/bin/sclite, espeak-ng, sox): nothing to do"
    exit 0
  elif "${venv}/bin/python" -c "${bench_imports}" 2>/dev/null; then
    log "everything is already installed (tools/venv, tools/sctk/bin/sclite, espeak-ng, sox, the benchmarks' peers): nothing to do"
    exit 0
  fi
fi

# ---------------------------------------------------------------- system tools
apt_install() {
  # Installs Debian packages when we are root and apt exists; returns 1 otherwise.
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || return 1
  ${dry_run} && { log "would run: apt-get install -y $*"; return 0; }
  log "installing with apt: $*"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1; then
    apt-get update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1 || return 1
  fi
}
missing=()
for prog in espeak-ng sox; do command -v ${prog} >/dev/null || missing+=("${prog}"); done
if [ ${#missing[@]} -gt 0 ]; then
  apt_install "${missing[@]}" || die "missing ${missing[*]}: install them (Debian/Ubuntu: 'sudo apt-get install ${missing[*]}') and run tools/setup.sh again"
fi

# ---------------------------------------------------------------- sclite
bash "${tools_dir}/installers/install_sctk.sh" "${tools_dir}/sctk" "${sctk_src}" "${sctk_url}" "${dry_run}"

# ---------------------------------------------------------------- venv
if [ ! -x "${venv}/bin/python" ]; then
  log "creating ${venv#${root_dir}/} with $(${python} --version 2>&1)"
  opts=()
  ${system_site} && opts+=(--system-site-packages)
  "${python}" -m venv "${opts[@]}" "${venv}"
fi
vpy=${venv}/bin/python

# The torch guard: the constraints file pins the torch that is (or will be)
# installed, and every pip call below goes through pip_install, which always
# passes it, so that resolving another package can never pull a second torch.
constraints=${venv}/bljust-constraints.txt
have_torch=$("${vpy}" -c 'import torch; print(torch.__version__)' 2>/dev/null || true)
if [ -n "${have_torch}" ]; then
  log "keeping the torch already in the venv: ${have_torch}"
  echo "torch==${have_torch}" > "${constraints}"
else
  echo "torch==${torch_version}" > "${constraints}"
fi
pip_install() {
  local cmd=("${vpy}" -m pip install --disable-pip-version-check -q -c "${constraints}" "$@")
  if ${dry_run}; then echo "+ ${cmd[*]}"; return 0; fi
  # pip's warnings about file:// indexes that do not hold a package are noise here
  "${cmd[@]}" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}
if [ -z "${have_torch}" ]; then
  log "installing torch==${torch_version}"
  pip_install "torch==${torch_version}" numpy
  ${dry_run} || echo "torch==$("${vpy}" -c 'import torch; print(torch.__version__)')" > "${constraints}"
fi

# torchaudio: 2.11.0 is the only release that installs beside torch 2.13 without
# replacing it; for other torch versions take the torchaudio of the same minor.
purelib=$("${vpy}" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if [ ! -d "${purelib}/torchaudio" ] && ! "${vpy}" -c 'import torchaudio' 2>/dev/null; then
  tv=$(sed -n 's/^torch==\([0-9]*\.[0-9]*\).*/\1/p' "${constraints}")
  case "${tv}" in
    2.12|2.13) ta="torchaudio==2.11.0" ;;
    *) ta="torchaudio==${tv}.*" ;;
  esac
  pip_install "${ta}"
fi
${dry_run} || "${vpy}" "${tools_dir}/installers/fix_torchaudio_cpu.py"

# matplotlib: loss/CER/f-g curves next to the model; tensorboard: event files for `tensorboard --logdir exp`
pip_install numpy kaldiio sentencepiece pyyaml typeguard humanfriendly soundfile safetensors tqdm matplotlib tensorboard pytest
# Triton: the fused soft-DTW kernels on CUDA, and (its interpreter) their tests on CPU. A CUDA
# torch brings the triton it was built with: never replace that one.
"${vpy}" -c 'import triton' 2>/dev/null || pip_install triton
log "installing bljust (editable) into the venv"
pip_install --no-build-isolation --no-deps -e "${root_dir}"

if ${bench}; then
  log "installing the benchmarks' peers: ${bench_peers[*]}"
  pip_install "${bench_peers[@]}"
  if ! ${dry_run}; then
    now_torch=$("${vpy}" -c 'import torch; print(torch.__version__)')
    [ "torch==${now_torch}" = "$(cat "${constraints}")" ] \
      || die "torch changed to ${now_torch} while installing the benchmarks' peers (expected $(cat "${constraints}"))"
    "${vpy}" -c "${bench_imports}" || die "the benchmarks' peers do not import; see the messages above"
    log "benchmarks' peers: $("${vpy}" -m pip list --disable-pip-version-check 2>/dev/null \
      | awk 'tolower($1) ~ /^(kaldi[-_]native[-_]fbank|tslearn|pysdtw|flashlight-text|numba)$/ {printf "%s %s, ", $1, $2}')torch ${now_torch}"
  fi
fi

${dry_run} && exit 0
"${vpy}" -c 'import torch, torchaudio, kaldiio, sentencepiece, yaml, typeguard, humanfriendly, soundfile, safetensors, numpy, matplotlib, tensorboard, bljust' \
  || die "the venv does not import everything bljust needs; see the messages above"
fingerprint > "${stamp}"
log "done: $("${vpy}" -c 'import torch, torchaudio; print("torch", torch.__version__, "torchaudio", torchaudio.__version__)'), sclite at tools/sctk/bin/sclite"
