# Sourced by every recipe script: the bljust venv, utils/ and sclite on PATH, C locale.
# It finds the repository from its own real location, so recipes may link to it.
MAIN_ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../../.." && pwd)
export MAIN_ROOT
if [ -f "${MAIN_ROOT}/tools/venv/bin/activate" ]; then
  # shellcheck disable=SC1091
  . "${MAIN_ROOT}/tools/venv/bin/activate"
else
  echo "path.sh: ${MAIN_ROOT}/tools/venv is missing: run tools/setup.sh first" >&2
fi
export PATH="${MAIN_ROOT}/utils:${MAIN_ROOT}/tools/sctk/bin:${PATH}"
# This repository's bljust, whatever copy the venv was installed from (a second checkout
# sharing one venv runs its own code).
export PYTHONPATH="${MAIN_ROOT}${PYTHONPATH:+:${PYTHONPATH}}"
export LC_ALL=C
export PYTHONIOENCODING=UTF-8
# One thread per job: parallelism comes from JOB=1:N, not from each job's BLAS.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
