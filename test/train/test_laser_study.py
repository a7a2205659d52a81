"""bljust.bin.laser_study: the tables of a LASER study, from probe and LASER folders laid out
as laser_study.sh leaves them (checkpoints in the training core's layout, sclite reports)."""
from __future__ import annotations

import os
import re

import pytest
import torch

from bljust.bin import laser_study
from bljust.train.checkpoint import save_checkpoint


def sclite_report(path: str, err: float) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("| SPKR | # Snt # Wrd | Corr Sub Del Ins Err S.Err |\n"
                f"| Sum/Avg | 30 900 | {100 - err:.1f} {err / 2:.1f} {err / 2:.1f} 0.0 {err:.1f} 90.0 |\n")


def probe(exp: str, point: str, seed: int, test_per: float, valid: list, weights: list, task: str = "pr") -> None:
    d = os.path.join(exp, f"superb_{point}_s{seed}_{task}")
    os.makedirs(d)
    hist = [{"step": 250 * (i + 1), "valid_loss": 1.0, "error_rate": v} for i, v in enumerate(valid)]
    save_checkpoint({"loop": {"step": 250 * len(valid), "wall": 90.0, "history": hist, "log": []},
                     "method": {"model": {"featurizer.weights": torch.tensor(weights)}}, "rng": {}}, d)
    sclite_report(os.path.join(d, "decode_greedy", "test", "score_wer", "result.txt"), test_per)


def laser_run(exp: str, setting: str, lr: float, diag_steps: list) -> None:
    d = os.path.join(exp, f"laser_{setting}")
    os.makedirs(d)
    diag = [dict(step=s, sdtw_div=10.0 + s, idm=100.0, cos_near=0.5, cos_far=0.01 * s, var=0.01, erank=40.0 - s,
                 diag_dev_id=0.0, diag_dev_pair=0.1) for s in diag_steps]
    save_checkpoint({"loop": {"step": 60, "wall": 120.0, "history": [], "log": []}, "method": {"diag": diag},
                     "rng": {}}, d)
    with open(os.path.join(d, "config.yaml"), "w") as f:
        f.write(f"optim: {{lr: {lr}}}\nupstream: {{train_last: 2}}\ntrainer: {{max_updates: 60}}\n")


@pytest.fixture
def study(tmp_path):
    exp = str(tmp_path / "exp")
    flat, rising = [70.0, 60.5, 60.2], [70.0, 66.0, 60.0]  # the second is still falling at the end
    for seed, per in zip((1, 2, 3), (50.0, 52.0, 54.0)):
        probe(exp, "laser0", seed, per, flat, [0.0, 0.0, 1.0])
        probe(exp, "recipe_u60", seed, per + 6.0, rising if seed == 2 else flat, [1.0, 0.0, 0.0])
    probe(exp, "recipe_u15", 1, 53.0, flat, [0.0, 0.0, 0.0])
    probe(exp, "pre300", 1, 80.0, flat, [0.0, 0.0, 0.0])
    probe(exp, "laser0", 1, 81.0, flat, [0.0, 0.0, 0.0], task="asr")   # the ASR probe: WER
    probe(exp, "recipe_u60", 1, 79.0, flat, [0.0, 0.0, 0.0], task="asr")
    probe(exp, "recipe_u30", 1, 80.5, flat, [0.0, 0.0, 0.0], task="asr")  # the WER curve
    os.makedirs(os.path.join(exp, "superb_unfinished_s1_pr"))  # no checkpoint yet: left out
    laser_run(exp, "recipe", 2e-4, [5, 10, 15, 60])
    pre = os.path.join(exp, "pretrain_study")
    os.makedirs(pre)
    save_checkpoint({"loop": {"step": 3600, "wall": 1500.0, "history": [], "log": [{"step": 3600, "masked_acc": 0.25}]},
                     "rng": {}}, pre)
    return exp, pre


def row(text: str, first: str) -> list:
    line = next(ln for ln in text.splitlines() if ln.startswith(f"| {first} "))
    return [c.strip() for c in line.strip("|").split("|")]


def test_tables(study):
    exp, pre = study
    text = laser_study.summarize(exp, pre, 3600)
    # pre-training: cost, accuracy, the PR curve ending at the upstream LASER starts from
    assert "3600 updates in 25.0 min wall time; masked-prediction accuracy at the end 25.0%" in text
    assert row(text, "300")[1:] == ["80.0", "60.2"] and row(text, "3600")[1:] == ["50.0", "60.2"]
    # before / after: every seed, mean ± sample std, relative change, layer weights, convergence
    before, after = row(text, "before LASER"), row(text, "recipe (lr 0.0002, last 2 layers, 60 updates)")
    assert before[1:4] == ["1,2,3", "50.0 / 52.0 / 54.0", "52.0 ± 2.0"] and before[4] == "-"
    assert after[3] == "58.0 ± 2.0" and after[4] == f"{100 * (52 - 58) / 52:+.1f}%"
    e, one = torch.softmax(torch.tensor([0.0, 0.0, 1.0]), 0).tolist(), torch.softmax(torch.tensor([1.0, 0, 0]), 0)
    assert before[6] == " ".join(f"{v:.2f}" for v in e) and after[6].split()[0] == f"{one[0]:.2f}"
    assert before[7] == "3/3" and after[7] == "2/3"  # seed 2's dev PER still fell by 6 points at the end
    # the curve over LASER with the diagnostics logged at that update (none at 0)
    curve = text[text.index("## PR curve over LASER fine-tuning: recipe"):]
    assert row(curve, "0")[1] == "50.0" and row(curve, "0")[3:] == ["-"] * 8
    r15 = row(curve, "15")
    assert r15[1] == "53.0" and r15[3] == "25.0" and r15[6] == "0.150" and r15[8] == "25.000"
    assert row(curve, "60")[1] == "56.0"
    assert "unfinished" not in text
    assert len(re.findall(r"^\| (laser0|recipe_u60) \| pr \| \d ", text, re.M)) == 6  # every probe listed
    assert len(re.findall(r"^\| (laser0|recipe_u60|recipe_u30) \| asr \| 1 \| \d+ \| (81|79|80\.5)", text, re.M)) == 3
    # the ASR probe's own before/after table; the PR table does not mix ASR runs in
    pr_table = text[:text.index("## Before / after LASER (ASR probe")]
    assert row(pr_table[pr_table.index("## Before / after LASER (PR"):], "before LASER")[3] == "52.0 ± 2.0"
    asr = text[text.index("## Before / after LASER (ASR probe"):]
    assert "WER test per seed" in asr
    b, a = row(asr, "before LASER"), row(asr, "recipe (lr 0.0002, last 2 layers, 60 updates)")
    assert b[1:4] == ["1", "81.0", "81.0"] and a[1:5] == ["1", "79.0", "79.0", f"{100 * 2 / 81:+.1f}%"]
    wer = text[text.index("## WER curve over LASER fine-tuning: recipe (ASR probe, seed 1)"):]
    assert [row(wer, u)[1] for u in ("0", "30", "60")] == ["81.0", "80.5", "79.0"]


def test_entry_point_writes_the_file_and_fails_in_one_line(study, tmp_path, capfd):
    exp, pre = study
    out = tmp_path / "RESULTS.md"
    assert laser_study.main(["--expdir", exp, "--pretrain_dir", pre, "--pretrain_last", "3600", "--out", str(out)]) == 0
    assert out.read_text().startswith("# LASER study")
    capfd.readouterr()
    assert laser_study.main(["--expdir", str(tmp_path / "none")]) == 1
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no finished probe" in err[0], err
