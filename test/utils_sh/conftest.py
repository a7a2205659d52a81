"""Fixtures for the tests of the Kaldi-style shell scripts in utils/ (tests of bljust/utils are in test/utils/)."""
from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UTILS = REPO / "utils"
FAKE_SCHED = Path(__file__).resolve().parent / "fake_sched"


@dataclass
class FakeScheduler:
    """Environment that puts the fake sbatch/qsub/squeue/qstat/sacct first on PATH."""

    env: dict
    record: Path
    state: Path

    def calls(self, prog: str | None = None) -> list[list[str]]:
        """argv of every recorded call (program name first), optionally of one program."""
        if not self.record.exists():
            return []
        out = [shlex.split(line) for line in self.record.read_text().splitlines() if line]
        return [c for c in out if prog is None or c[0] == prog]


@pytest.fixture
def utils_dir() -> Path:
    return UTILS


@pytest.fixture
def fake_sched(tmp_path: Path) -> FakeScheduler:
    state = tmp_path / "sched_state"
    state.mkdir()
    record = tmp_path / "sched_calls.txt"
    env = dict(os.environ)
    env.update(
        PATH=f"{FAKE_SCHED}{os.pathsep}{env.get('PATH', '')}",
        FAKE_SCHED_LOG=str(record),
        FAKE_SCHED_DIR=str(state),
        # Fast polling so that the tests take well under a second each.
        BLJUST_LAUNCH_POLL="0.02",
        BLJUST_LAUNCH_POLL_MAX="0.1",
        BLJUST_LAUNCH_QUERY="0.05",
        BLJUST_LAUNCH_GRACE="0.3",
    )
    for k in ("FAKE_SCHED_DROP", "FAKE_SCHED_ASYNC", "FAKE_SCHED_FAIL_SUBMIT", "FAKE_SACCT_STATE"):
        env.pop(k, None)
    return FakeScheduler(env=env, record=record, state=state)
