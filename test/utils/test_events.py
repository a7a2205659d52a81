"""TensorBoard event files: what a trainer logs is what `tensorboard --logdir exp` shows."""
import math

from bljust.utils.events import EventLog, read_scalars


def test_scalars_are_written_and_read_back(tmp_path):
    ev = EventLog(str(tmp_path))
    for step in range(5):
        ev.scalars(step, {"loss": 10.0 - step, "phase": "joint", "bad": math.nan}, "train/")
    ev.close()
    got = read_scalars(str(tmp_path))
    assert set(got) == {"train/loss"}  # strings and non-finite values are left out
    assert got["train/loss"] == [(s, 10.0 - s) for s in range(5)]


def test_a_resumed_run_hides_what_the_killed_run_wrote_after_its_checkpoint(tmp_path):
    first = EventLog(str(tmp_path))
    for step in range(1, 6):  # killed after update 5, last checkpoint after update 3
        first.scalars(step, {"loss": float(step)})
    first.close()
    again = EventLog(str(tmp_path), resume_step=3)
    for step in range(4, 8):
        again.scalars(step, {"loss": 100.0 + step})
    again.close()
    got = read_scalars(str(tmp_path))["loss"]
    assert got == [(1, 1.0), (2, 2.0), (3, 3.0)] + [(s, 100.0 + s) for s in range(4, 8)]


def test_other_ranks_write_nothing(tmp_path):
    ev = EventLog(str(tmp_path), enabled=False)
    ev.scalars(0, {"loss": 1.0})
    ev.close()
    assert not (tmp_path / "tensorboard").exists()
