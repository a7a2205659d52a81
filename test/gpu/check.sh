#!/usr/bin/env bash
# The GPU check in one command: bljust's CUDA path, correctness and speed, one block of figures.
#
#   test/gpu/check.sh [--quick] [--only softdtw,amp,train,resume,ddp,bench,loader,cudatests] [--bench train,bilevel,softdtw]
#
# Needs one NVIDIA GPU (about 8 minutes with --quick on an H100/H200, estimated from the
# parts' earlier times; without one it runs the CPU side and says what it skipped). The
# soft-DTW benchmark compares with pysdtw, installed by `tools/setup.sh --bench`. The summary
# block is also written to test/gpu/last_check.txt; measured figures are kept in
# test/gpu/RESULTS.md. Exit status 1 when any part fails.
set -euo pipefail
root=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)
cd "${root}"
py=python3
[ -x tools/venv/bin/python ] && py=tools/venv/bin/python
export PYTHONPATH="${root}${PYTHONPATH:+:${PYTHONPATH}}" PYTHONUNBUFFERED=1
exec "${py}" test/gpu/check.py --report test/gpu/last_check.txt "$@"
