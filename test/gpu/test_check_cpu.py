"""test/gpu/check.sh on a machine without a GPU: it runs its CPU side, passes, and says what it skipped."""
import os
import subprocess
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_gpu_check_runs_its_cpu_side(tmp_path):
    report = tmp_path / "summary.txt"
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    p = subprocess.run([sys.executable, "test/gpu/check.py", "--only", "softdtw,amp,train,ddp,bench",
                        "--report", str(report)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    summary = report.read_text()
    assert "PASS train/supervised" in summary and "PASS train/BL-JUST" in summary
    if not torch.cuda.is_available():
        for part in ("softdtw", "amp", "ddp", "bench"):
            assert f"SKIP {part}" in summary
