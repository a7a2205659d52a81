"""The Kaldi-named utils/ data-dir scripts, run end to end as a recipe runs them."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UTILS = os.path.join(ROOT, "utils")


def make_dir(path):
    os.makedirs(path)
    utts = [("spkA-u1", "hello there"), ("spkA-u2", "good day"), ("spkB-u1", "yes"), ("spkC-u1", "no way")]
    files = {
        "text": [f"{u} {t}" for u, t in utts],
        "utt2spk": [f"{u} {u[:4]}" for u, _ in utts],
        "spk2utt": ["spkA spkA-u1 spkA-u2", "spkB spkB-u1", "spkC spkC-u1"],
        "wav.scp": [f"{u} /audio/{u}.wav" for u, _ in utts],
    }
    for name, lines in files.items():
        with open(os.path.join(path, name), "w") as f:
            f.write("".join(l + "\n" for l in lines))
    return path


def run(script, *args, path_dir=None, input=None):
    env = dict(os.environ)
    env["PATH"] = (path_dir or os.path.dirname(sys.executable)) + os.pathsep + env.get("PATH", "")
    return subprocess.run([os.path.join(UTILS, script), *map(str, args)], env=env, input=input,
                          capture_output=True, text=True, timeout=60)


def read(path, name):
    with open(os.path.join(path, name)) as f:
        return f.read().splitlines()


def test_validate_split_perturb_end_to_end(tmp_path):
    d = make_dir(str(tmp_path / "train"))
    r = run("validate_data_dir.sh", d)
    assert r.returncode == 0, r.stderr
    assert "Successfully validated" in r.stderr

    r = run("split_data.sh", d, 3)
    assert r.returncode == 0, r.stderr
    for i in (1, 2, 3):
        assert run("validate_data_dir.sh", f"{d}/split3/{i}").returncode == 0
    assert sorted(sum((read(f"{d}/split3/{i}", "utt2spk") for i in (1, 2, 3)), [])) == read(d, "utt2spk")
    r = run("split_data.sh", d, 4)
    assert r.returncode != 0 and "3 speakers into 4 parts" in r.stderr
    assert run("split_data.sh", "--per-utt", d, 4).returncode == 0
    assert os.path.isdir(f"{d}/split4utt/4")

    sp = str(tmp_path / "train_sp0.9")
    r = run("perturb_data_dir_speed.sh", "0.9", d, sp)
    assert r.returncode == 0, r.stderr
    assert read(sp, "wav.scp")[0] == "sp0.9-spkA-u1 sox -t wav /audio/spkA-u1.wav -t wav - speed 0.9 |"
    assert read(sp, "utt2spk")[0] == "sp0.9-spkA-u1 sp0.9-spkA"
    assert run("validate_data_dir.sh", sp).returncode == 0

    sp3 = str(tmp_path / "train_sp")
    r = run("data/perturb_data_dir_speed_3way.sh", d, sp3)
    assert r.returncode == 0, r.stderr
    assert len(read(sp3, "utt2spk")) == 12 and "spkA-u1 spkA" in read(sp3, "utt2spk")
    assert run("validate_data_dir.sh", sp3).returncode == 0


def test_validate_reports_file_and_line(tmp_path):
    d = make_dir(str(tmp_path / "bad"))
    with open(os.path.join(d, "text"), "a") as f:
        f.write("spkA-u0 out of order\n")
    r = run("validate_data_dir.sh", d)
    assert r.returncode == 1
    assert "text:5: not sorted" in r.stderr and "'spkA-u0' is not in" in r.stderr
    assert run("validate_data_dir.sh", "--no-text", d).returncode == 0
    r = run("fix_data_dir.sh", d)
    assert r.returncode == 0, r.stderr
    assert "dropped 1: lines of text not in utt2spk" in r.stderr
    assert os.path.isfile(os.path.join(d, ".backup", "text"))


def test_subset_copy_combine(tmp_path):
    d = make_dir(str(tmp_path / "d"))
    assert run("subset_data_dir.sh", "--first", d, 2, tmp_path / "first").returncode == 0
    assert read(tmp_path / "first", "utt2spk") == ["spkA-u1 spkA", "spkA-u2 spkA"]
    assert run("subset_data_dir.sh", "--last", 1, d, tmp_path / "last").returncode == 0
    assert read(tmp_path / "last", "utt2spk") == ["spkC-u1 spkC"]
    (tmp_path / "spk").write_text("spkB\n")
    assert run("subset_data_dir.sh", "--spk-list", tmp_path / "spk", d, tmp_path / "b").returncode == 0
    assert read(tmp_path / "b", "text") == ["spkB-u1 yes"]

    r = run("copy_data_dir.sh", "--utt-prefix", "x-", "--spk-prefix=x-", d, tmp_path / "x")
    assert r.returncode == 0, r.stderr
    assert read(tmp_path / "x", "utt2uniq")[0] == "x-spkA-u1 spkA-u1"
    feats = tmp_path / "feats"  # as feature extraction leaves it: features only
    feats.mkdir()
    (feats / "feats.scp").write_text("spkA-u1 raw.ark:9\nspkB-u1 raw.ark:99\n")
    (feats / "feat_dim").write_text("80\n")
    r = run("copy_data_dir.sh", "--keep-feats", d, feats)
    assert r.returncode == 0, r.stderr
    assert read(feats, "feats.scp") == ["spkA-u1 raw.ark:9", "spkB-u1 raw.ark:99"]
    assert len(read(feats, "text")) == 4 and read(feats, "feat_dim") == ["80"]
    r = run("validate_data_dir.sh", feats)  # the two utterances without features are named
    assert r.returncode == 1 and "'spkA-u2' is not in" in r.stderr

    r = run("combine_data.sh", tmp_path / "all", d, tmp_path / "x")
    assert r.returncode == 0, r.stderr
    assert len(read(tmp_path / "all", "utt2spk")) == 8
    assert run("validate_data_dir.sh", tmp_path / "all").returncode == 0
    r = run("combine_data.sh", tmp_path / "dup", d, tmp_path / "first")
    assert r.returncode == 1 and "'spkA-u1' is in both" in r.stderr


def test_perl_conversions_round_trip(tmp_path):
    utt2spk = "a-1 a\na-2 a\nb-1 b\n"
    spk2utt = run("utt2spk_to_spk2utt.pl", input=utt2spk)
    assert spk2utt.stdout == "a a-1 a-2\nb b-1\n"
    assert run("spk2utt_to_utt2spk.pl", input=spk2utt.stdout).stdout == utt2spk


@pytest.mark.skipif(not os.access(os.path.join(ROOT, "tools", "venv", "bin", "python"), os.X_OK),
                    reason="no tools/venv to fall back to")
def test_falls_back_to_the_repo_venv(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "python").write_text("#!/bin/sh\nexit 1\n")  # a python that cannot import bljust
    (fake / "python").chmod(0o755)
    d = make_dir(str(tmp_path / "d"))
    recipe = tmp_path / "egs" / "asr1"
    recipe.mkdir(parents=True)
    (recipe / "utils").symlink_to(UTILS)  # as recipes link the repo's utils/
    env = dict(os.environ, PATH=str(fake) + os.pathsep + os.environ.get("PATH", ""))
    r = subprocess.run([str(recipe / "utils" / "validate_data_dir.sh"), d], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


@pytest.mark.skipif(shutil.which("sox") is None, reason="needs sox")
def test_speed_perturbed_audio_plays_at_the_new_length(tmp_path):
    np = pytest.importorskip("numpy")
    sf = pytest.importorskip("soundfile")
    d = tmp_path / "d"
    d.mkdir()
    sf.write(str(tmp_path / "a.wav"), (np.sin(np.arange(16000) / 7) * 5000).astype(np.int16), 16000)
    (d / "wav.scp").write_text(f"s-a {tmp_path / 'a.wav'}\ns-b cat {tmp_path / 'a.wav'} |\n")
    (d / "utt2spk").write_text("s-a s\ns-b s\n")
    (d / "spk2utt").write_text("s s-a s-b\n")
    assert run("data/get_utt2dur.sh", d).returncode == 0
    assert read(d, "utt2dur") == ["s-a 1", "s-b 1"]
    assert run("perturb_data_dir_speed.sh", "0.9", d, tmp_path / "sp").returncode == 0
    assert read(tmp_path / "sp", "utt2dur") == ["sp0.9-s-a 1.111", "sp0.9-s-b 1.111"]
    os.unlink(tmp_path / "sp" / "utt2dur")
    r = run("data/get_utt2dur.sh", tmp_path / "sp")  # runs the sox pipes
    assert r.returncode == 0, r.stderr
    for line in read(tmp_path / "sp", "utt2dur"):
        assert abs(float(line.split()[1]) - 1 / 0.9) < 0.01, line


@pytest.mark.parametrize("where", ["repo_root", "elsewhere", "recipe_link"])
def test_scripts_use_the_projects_python_from_any_folder(tmp_path, where):
    """Without path.sh, and with a broken `python`/`python3` first on PATH, utils/*.sh still work."""
    d = make_dir(str(tmp_path / "data" / "x"))
    fake = tmp_path / "fakebin"
    fake.mkdir()
    # stands for a system python that imports bljust from the current folder but lacks its dependencies
    body = ('#!/bin/sh\n[ "$1" = -c ] && [ "$2" = "import bljust" ] && exit 0\n'
            "echo \"wrong python: ModuleNotFoundError: No module named 'typeguard'\" >&2\nexit 1\n")
    for name in ("python", "python3"):
        (fake / name).write_text(body)
        (fake / name).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{fake}{os.pathsep}/usr/bin{os.pathsep}/bin"
    script = os.path.join(UTILS, "validate_data_dir.sh")
    cwd = {"repo_root": ROOT, "elsewhere": str(tmp_path)}.get(where)
    if where == "recipe_link":  # a recipe folder with utils -> the repository's utils
        cwd = str(tmp_path / "recipe")
        os.makedirs(cwd)
        os.symlink(UTILS, os.path.join(cwd, "utils"))
        script = "utils/validate_data_dir.sh"
    p = subprocess.run([script, "--no-feats", "--no-wav", d], cwd=cwd, env=env, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "wrong python" not in p.stderr
    p = subprocess.run([os.path.join(UTILS, "split_data.sh"), d, "2"], cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert os.path.isfile(os.path.join(d, "split2", "1", "utt2spk"))
