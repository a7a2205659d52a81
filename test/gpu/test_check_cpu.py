"""test/gpu/check.sh on a machine without a GPU: it runs its CPU side, passes, and says what it skipped."""
import os
import subprocess
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_gpu_check_runs_its_cpu_side(tmp_path):
    report = tmp_path / "summary.txt"
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    p = subprocess.run([sys.executable, "test/gpu/check.py", "--only", "softdtw,amp,train,ddp,bench,loader,cudatests",
                        "--report", str(report)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    summary = report.read_text()
    assert "PASS train/supervised" in summary and "PASS train/BL-JUST" in summary
    if not torch.cuda.is_available():
        for part in ("softdtw", "amp", "ddp", "bench", "loader", "cudatests"):
            assert f"SKIP {part}" in summary


def test_the_train_benchmark_lines_are_parsed_with_their_tags():
    import re
    sys.path.insert(0, os.path.join(ROOT, "test", "gpu"))
    import check
    line = ("librispeech_conformer    bljust     batch 64x1500 [compiled, channels_last]    50.2M params     "
            "75.3 ms/step     1274442 frames/s  16450.8 GFLOP/step  218.47 TFLOP/s  MFU 22.1%")
    assert re.findall(check.TRAIN_LINE, line) == [("bljust", "64x1500 [compiled, channels_last]", "1274442", "22.1")]
    plain = line.replace(" [compiled, channels_last]", "")
    assert re.findall(check.TRAIN_LINE, plain) == [("bljust", "64x1500", "1274442", "22.1")]
