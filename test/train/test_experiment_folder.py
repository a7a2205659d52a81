"""What an experiment folder protects: damaged checkpoints fall back to the previous one,
a run with other model/feature settings is refused before anything is touched, one writer
at a time, disk full keeps the last checkpoint, and every failure is one line."""
from __future__ import annotations

import errno
import hashlib
import os
import subprocess
import sys
import time

import pytest
import torch
import yaml

from exp_helpers import copy_exp, make_corpus, train

from bljust.features import cmvn as cmvn_lib
from bljust.utils import serialization
from bljust.utils.model_info import sha256_file


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("expdir"))
    c = make_corpus(root)
    assert train(c, f"{root}/exp") == 0
    c["exp"] = f"{root}/exp"
    return c


def fingerprint(folder: str) -> dict:
    """Content and mtime of every file (links followed) of a folder."""
    out = {}
    for dp, _, files in os.walk(folder):
        for f in files:
            p = os.path.join(dp, f)
            if f != ".lock":
                out[os.path.relpath(p, folder)] = (hashlib.sha256(open(p, "rb").read()).hexdigest(),
                                                   os.stat(p).st_mtime_ns)
    return out


def damage(path: str, how: str) -> None:
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write({"truncated": data[: len(data) // 2], "empty": b"", "random": os.urandom(4096)}[how])


def one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if "ERROR" in ln]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_model_and_checkpoint_describe_their_inputs(world):
    conf = yaml.safe_load(open(f"{world['exp']}/config.yaml"))
    info = conf["model_info"]
    assert info["token_list"]["sha256"] == sha256_file(f"{world['tok']}/tokens.txt")
    assert info["token_list"]["size"] == info["vocab_size"] == len(open(f"{world['tok']}/tokens.txt").readlines())
    assert info["features"] == {"feat_dim": 20, "cmvn_type": "global", "cmvn_file": world["cmvn"],
                                "cmvn_sha256": sha256_file(world["cmvn"])}
    ck = serialization.load(f"{world['exp']}/checkpoint.pth")  # weights_only: plain types only
    assert ck["model_info"] == info
    assert ck["model_config"]["encoder"] == conf["encoder"] and ck["model_config"]["method"] == "supervised"
    assert serialization.load(f"{world['exp']}/checkpoint.prev.pth")["loop"]["step"] < ck["loop"]["step"]


@pytest.mark.parametrize("how", ["truncated", "empty", "random"])
def test_damaged_checkpoint_falls_back_to_the_previous_one(world, tmp_path, capfd, how):
    exp = copy_exp(world["exp"], str(tmp_path / "exp"))
    prev_step = serialization.load(f"{exp}/checkpoint.prev.pth")["loop"]["step"]
    damage(f"{exp}/checkpoint.pth", how)
    capfd.readouterr()
    assert train(world, exp, "--trainer.max_epoch", "3") == 0
    err = capfd.readouterr().err
    assert f"{exp}/checkpoint.pth" in err and f"resuming from the previous checkpoint {exp}/checkpoint.prev.pth" in err
    assert f"resumed at step {prev_step} " in err
    assert serialization.load(f"{exp}/checkpoint.pth")["loop"]["round"] == 4  # three epochs done


def test_both_checkpoints_damaged_is_one_line_naming_them(world, tmp_path, capfd):
    exp = copy_exp(world["exp"], str(tmp_path / "exp"))
    damage(f"{exp}/checkpoint.pth", "truncated")
    damage(f"{exp}/checkpoint.prev.pth", "random")
    capfd.readouterr()
    assert train(world, exp, "--trainer.max_epoch", "3") == 1
    line = one_error_line(capfd.readouterr().err)
    assert f"{exp}/checkpoint.pth" in line and f"{exp}/checkpoint.prev.pth" in line and "--resume false" in line


@pytest.mark.parametrize("change", ["encoder", "cmvn"])
def test_changed_model_settings_are_refused_untouched(world, tmp_path, capfd, change):
    exp = copy_exp(world["exp"], str(tmp_path / "exp"))
    before = fingerprint(exp)
    if change == "encoder":
        extra, expect = ["--encoder.d_model", "16"], "encoder.d_model: 32 -> 16"
    else:
        cmvn_lib.write_global(str(tmp_path / "other.ark"),
                              cmvn_lib.compute_stats(f"{world['dev']}/feats.scp")["global"])
        extra, expect = ["--cmvn", str(tmp_path / "other.ark")], "features.cmvn_sha256"
    time.sleep(0.01)
    capfd.readouterr()
    assert train(world, exp, *extra) == 1
    line = one_error_line(capfd.readouterr().err)
    assert expect in line and "--resume false" in line and "--output_dir" in line
    assert fingerprint(exp) == before  # config.yaml, model.pth and every checkpoint as they were
    # the explicit way out: start over in the same folder
    assert train(world, exp, *extra, "--resume", "false") == 0
    conf = yaml.safe_load(open(f"{exp}/config.yaml"))
    assert (conf["encoder"]["d_model"] == 16) if change == "encoder" else (conf["cmvn"] == extra[1])
    assert serialization.load(f"{exp}/checkpoint.pth")["loop"]["step"] == 6  # trained from scratch: 2 epochs


def test_second_trainer_on_a_locked_folder_exits_naming_the_holder(world, tmp_path, capfd):
    exp = copy_exp(world["exp"], str(tmp_path / "exp"))
    before = fingerprint(exp)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom bljust.utils.lock import hold_dir\n"
                               "with hold_dir(sys.argv[1], 'training'):\n    print('held', flush=True)\n"
                               "    time.sleep(120)\n", exp], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        capfd.readouterr()
        t0 = time.time()
        assert train(world, exp, "--trainer.max_epoch", "3") == 1
        assert time.time() - t0 < 10  # at once, not after waiting
        line = one_error_line(capfd.readouterr().err)
        assert f"pid {holder.pid}" in line and exp in line
        assert fingerprint(exp) == before
    finally:
        holder.kill()
        holder.wait()
    assert train(world, exp, "--trainer.max_epoch", "3") == 0  # the lock died with its holder


def test_disk_full_while_saving_keeps_the_previous_checkpoint(world, tmp_path, capfd, monkeypatch):
    exp = copy_exp(world["exp"], str(tmp_path / "exp"))
    good = open(f"{exp}/checkpoint.pth", "rb").read()
    real_save = torch.save

    def full_disk(obj, f, *a, **k):
        if isinstance(obj, dict) and "loop" in obj:  # the training checkpoint
            f.write(b"half a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(serialization.torch, "save", full_disk)
    capfd.readouterr()
    assert train(world, exp, "--trainer.max_epoch", "3") == 1
    line = one_error_line(capfd.readouterr().err)
    assert f"cannot write {exp}/checkpoint.pth: No space left on device" in line and "intact" in line
    assert open(f"{exp}/checkpoint.pth", "rb").read() == good
    assert not [f for f in os.listdir(exp) if "partial" in f or f.endswith(".tmp")]


@pytest.mark.parametrize("workers", [0, 1])
def test_truncated_feature_ark_names_the_utterance(world, tmp_path, capfd, workers):
    import shutil

    d = str(tmp_path / "train")
    shutil.copytree(world["train"], d)
    scp = open(f"{d}/feats.scp").read().replace(world["train"], d)
    open(f"{d}/feats.scp", "w").write(scp)
    size = os.path.getsize(f"{d}/feats.ark")
    os.truncate(f"{d}/feats.ark", size - 3000)
    c = dict(world, train=d)
    capfd.readouterr()
    assert train(c, str(tmp_path / "exp"), "--trainer.num_workers", str(workers)) == 1
    line = one_error_line(capfd.readouterr().err)
    assert "cannot read features of" in line and f"{d}/feats.ark" in line


def test_ngpu_on_a_machine_without_cuda(world, tmp_path, capfd):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the error is for machines without it")
    capfd.readouterr()
    assert train(world, str(tmp_path / "exp"), "--ngpu", "1") == 1
    line = one_error_line(capfd.readouterr().err)
    assert "--ngpu 1" in line and "--ngpu 0" in line
    assert not os.path.exists(tmp_path / "exp" / "config.yaml")


def test_bilevel_without_unlabeled_data(world, tmp_path, capfd):
    capfd.readouterr()
    assert train(world, str(tmp_path / "exp"), bilevel=True, unlab=False) == 1
    line = one_error_line(capfd.readouterr().err)
    assert "--unlab_data_dir" in line
    assert not os.path.exists(tmp_path / "exp" / "config.yaml")


def test_orphaned_runpl_job_keeps_the_folder(world, tmp_path, capfd):
    """Killing run.sh's process group (SIGKILL) leaves run.pl's job running in its own group;
    a rerun in the same folder stops at the lock, naming the orphan."""
    import signal

    exp = copy_exp(world["exp"], str(tmp_path / "exp"))
    runpl = os.path.join(os.path.dirname(__file__), "..", "..", "utils", "run.pl")
    code = ("import sys, time\nfrom bljust.utils.lock import hold_dir\nwith hold_dir(sys.argv[1], \"training\"):\n"
            "    time.sleep(120)\n")
    shell = subprocess.Popen([runpl, f"{exp}/job.log", sys.executable, "-c", code, exp], start_new_session=True)
    orphan = None
    try:
        deadline = time.time() + 30
        while time.time() < deadline and orphan is None:
            time.sleep(0.1)
            text = open(f"{exp}/.lock").read() if os.path.exists(f"{exp}/.lock") else ""
            if "pid=" in text and int(text.split("pid=")[1].split()[0]) != os.getpid():
                orphan = int(text.split("pid=")[1].split()[0])
        assert orphan, open(f"{exp}/job.log").read()
        os.killpg(shell.pid, signal.SIGKILL)  # what killing run.sh's group does
        shell.wait()
        time.sleep(0.2)
        os.kill(orphan, 0)  # still alive: its own process group
        capfd.readouterr()
        assert train(world, exp, "--trainer.max_epoch", "3") == 1
        line = one_error_line(capfd.readouterr().err)
        assert f"pid {orphan}" in line and "process group" in line
    finally:
        if orphan and orphan != os.getpid():
            os.kill(orphan, signal.SIGKILL)


def test_a_run_from_before_an_option_existed_still_resumes(world, tmp_path):
    """An encoder option added to bljust since (absent from the old config.yaml) counts as its default."""
    exp = copy_exp(world["exp"], str(tmp_path / "exp"))
    conf = yaml.safe_load(open(f"{exp}/config.yaml"))
    del conf["encoder"]["conv_norm"]
    with open(f"{exp}/config.yaml", "w") as f:
        yaml.safe_dump(conf, f)
    assert train(world, exp, "--trainer.max_epoch", "3") == 0
    # ... unless this run sets it to something else
    assert train(world, exp, "--trainer.max_epoch", "3", "--encoder.conv_norm", "batch_norm") == 1


def test_debug_shows_the_traceback(world, tmp_path, capfd):
    capfd.readouterr()
    assert train(world, str(tmp_path / "exp"), "--debug", bilevel=True, unlab=False) == 1
    err = capfd.readouterr().err
    assert "Traceback" in err and "--unlab_data_dir" in err
