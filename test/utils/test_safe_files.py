"""bljust.utils.serialization, lock and keep_log.sh: the pieces experiment folders rely on."""
from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from bljust.utils import serialization as S
from bljust.utils.lock import LockError, hold, hold_dir

UTILS = Path(__file__).resolve().parents[2] / "utils"


class Touch:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize("zip_format", [True, False])
def test_code_carrying_files_are_refused_whatever_the_format(tmp_path, protocol, zip_format):
    p, marker = tmp_path / "x.pth", tmp_path / "pwned"
    torch.save({"w": torch.ones(2), "x": Touch(str(marker))}, p, pickle_protocol=protocol,
               _use_new_zipfile_serialization=zip_format)
    with pytest.raises(S.UnsafeFileError, match=f"{p}: refused"):
        S.load(str(p))
    assert not marker.exists()


def test_objects_beyond_plain_types_are_refused_not_called_corrupt(tmp_path):
    for obj in (argparse.Namespace(a=1), np.zeros(3), {"rng": np.random.get_state()}):
        torch.save(obj, tmp_path / "o.pth")
        with pytest.raises(S.UnsafeFileError):
            S.load(str(tmp_path / "o.pth"))
    torch.save({"ns": argparse.Namespace(a=1)}, tmp_path / "ns.pth")
    assert S.load(str(tmp_path / "ns.pth"), safe_globals=[argparse.Namespace])["ns"].a == 1


@pytest.mark.parametrize("how", ["truncated", "empty", "random", "text"])
def test_damaged_files_are_corrupt_with_their_name(tmp_path, how):
    p = tmp_path / "c.pth"
    torch.save({"w": torch.arange(1000.0)}, p)
    data = p.read_bytes()
    p.write_bytes({"truncated": data[: len(data) // 2], "empty": b"", "random": os.urandom(3000),
                   "text": b"not a checkpoint\n"}[how])
    with pytest.raises(S.CorruptFileError, match=str(p)):
        S.load(str(p))


def test_save_refuses_what_would_not_load_back_and_keeps_the_previous(tmp_path):
    p = str(tmp_path / "ck.pth")
    with pytest.raises(TypeError, match="ndarray"):
        S.save({"state": {"rng": np.zeros(2)}}, p)
    with pytest.raises(TypeError, match="PosixPath"):
        S.save({"dir": pathlib.Path("x")}, p)
    S.save({"step": 1, "t": torch.ones(1), "hist": [(1, 2.0)], "rng": random_state()}, p, keep_previous=p + ".prev")
    S.save({"step": 2}, p, keep_previous=p + ".prev")
    assert S.load(p)["step"] == 2 and S.load(p + ".prev")["step"] == 1


def random_state():
    import random

    return random.getstate()


def test_rng_state_round_trips_through_a_safe_checkpoint(tmp_path):
    from bljust.train.checkpoint import rng_state, set_rng_state

    S.save(rng_state(), str(tmp_path / "r.pth"))
    st = S.load(str(tmp_path / "r.pth"))
    a = (np.random.rand(), torch.rand(1).item())
    set_rng_state(st)
    assert (np.random.rand(), torch.rand(1).item()) == a


def test_lock_names_its_holder_and_is_released(tmp_path):
    d = str(tmp_path / "exp")
    with hold_dir(d, "training"):
        with pytest.raises(LockError, match=f"pid {os.getpid()} on host .*training.*process group {os.getpgrp()}"):
            with hold_dir(d):
                pass
    with hold_dir(d):  # released with its holder
        pass


def test_keep_log_appends_reruns_to_the_launchers_log(tmp_path):
    log = tmp_path / "exp" / "train.log"

    (tmp_path / "job.sh").write_text('echo "$1"\nexit "$2"\n')

    def job(word, code=0):
        return subprocess.run([str(UTILS / "keep_log.sh"), str(log), str(UTILS / "run.pl"), str(log),
                               "bash", "job.sh", word, str(code)], cwd=tmp_path, capture_output=True, text=True)

    assert job("first").returncode == 0
    assert job("second", 3).returncode == 1  # run.pl's status comes through
    text = log.read_text()
    assert "first" in text and "second" in text and text.index("first") < text.index("second")
    assert text.count("# Started at") == 2 and not (tmp_path / "exp" / "train.log.prev").exists()
    # a rerun killed before it joined the logs: the next one joins all three
    os.rename(log, str(log) + ".prev")
    log.write_text("killed run\n")
    assert job("third").returncode == 0
    text = log.read_text()
    assert text.index("second") < text.index("killed run") < text.index("third")


def test_feature_job_with_a_locked_output_exits(tmp_path, capfd):
    from bljust.bin import extract_feats

    data = tmp_path / "data"
    data.mkdir()
    (data / "wav.scp").write_text(f"u1 {tmp_path / 'none.wav'}\n")
    out = tmp_path / "dump"
    with hold_dir(str(out), "merging features"), hold(str(out / "feats.1.lock"), "feature extraction"):
        capfd.readouterr()
        assert extract_feats.main(["--data_dir", str(data), "--out_dir", str(out), "--name", "feats.1"]) == 1
        assert f"pid {os.getpid()}" in capfd.readouterr().err
        assert extract_feats.main(["--merge", "--data_dir", str(data), "--out_dir", str(out), "--nj", "1"]) == 1
        assert f"pid {os.getpid()}" in capfd.readouterr().err
    assert not (out / "feats.1.ark").exists()


def test_error_lines(tmp_path):
    import errno

    from torch.multiprocessing import ProcessRaisedException

    from bljust.utils import cli

    spawned = ProcessRaisedException("\n\n-- Process 0 terminated with the following error:\nTraceback (most recent "
                                     "call last):\n  File \"x.py\", line 1\nValueError: exp/x: refused", 0, 42)
    assert cli.message(spawned).startswith("exp/x: refused (in another process")
    assert cli.message(OSError(errno.ENOSPC, "No space left on device")).startswith("[Errno 28] No space")
    assert "rerun with --debug" in cli.message(ZeroDivisionError("x"))

    def body():
        raise ValueError("a.yaml: line 3:\n  bad")

    assert cli.run(body) == 1
    assert cli.run(lambda: None) == 0
