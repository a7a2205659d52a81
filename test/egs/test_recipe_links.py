"""Every recipe uses the TEMPLATE's path.sh and cmd.sh (links, as in ESPnet), and cmd.sh works."""
import glob
import os
import subprocess

import pytest

EGS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "egs")
RECIPES = sorted(d for d in glob.glob(os.path.join(EGS, "*", "*1")) if os.path.basename(os.path.dirname(d)) != "TEMPLATE")


def test_there_are_recipes():
    assert len(RECIPES) >= 5


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda d: os.path.relpath(d, EGS))
@pytest.mark.parametrize("name", ["path.sh", "cmd.sh"])
def test_shared_files_are_links_to_the_template(recipe, name):
    p = os.path.join(recipe, name)
    assert os.path.islink(p), f"{p} should link to egs/TEMPLATE/asr1/{name}"
    assert os.path.realpath(p) == os.path.realpath(os.path.join(EGS, "TEMPLATE", "asr1", name))


@pytest.mark.parametrize("backend,launcher", [("local", "run.pl"), ("sge", "queue.pl"), ("slurm", "slurm.pl")])
def test_cmd_sh_picks_the_launcher(backend, launcher):
    cmd = os.path.join(EGS, "TEMPLATE", "asr1", "cmd.sh")
    out = subprocess.run(["bash", "-c", f'. "{cmd}" && echo "$train_cmd|$cuda_cmd|$decode_cmd"'],
                         env=dict(os.environ, BLJUST_CMD_BACKEND=backend), capture_output=True, text=True, check=True)
    assert [c.split()[0] for c in out.stdout.strip().split("|")] == [launcher] * 3


def test_cmd_sh_refuses_an_unknown_backend():
    cmd = os.path.join(EGS, "TEMPLATE", "asr1", "cmd.sh")
    p = subprocess.run(["bash", "-c", f'. "{cmd}"'], env=dict(os.environ, BLJUST_CMD_BACKEND="pbs"),
                       capture_output=True, text=True)
    assert p.returncode != 0 and "unknown cmd_backend 'pbs'" in p.stderr
