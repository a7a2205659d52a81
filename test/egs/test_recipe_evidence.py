"""Stage 9 at the tiny size, as run.sh runs it by default: seeds, a sweep that tunes a
row, the schedule control, the topline, sc_stats p-values against a reference row, and the
budget curve, from one invocation (about 13 tiny trainings)."""
import os
import re
import subprocess

import pytest
import yaml

from recipe_helpers import make_recipe_copy, run_recipe

from bljust.score.significance import compare

C = "conf/tuning/train_bljust_tiny.yaml"
REF = C + ":bilevel.reuse_lower_grad=true"  # K = 1 with the reuse step: 2 passes a joint step
SUP = C + ":bilevel.budget_fractions=[0,0,1]"
CONTROL = C + ":bilevel.reuse_lower_grad=true:bilevel.k=0:bilevel.gamma0=0:bilevel.gamma_max=0:bilevel.lower_level=false"
PASSES = 24
ARGS = ["--local_data_opts", "--tiny true --nj 2", "--nbpe", "48", "--beam_size", "4",
        "--compare_passes", str(PASSES), "--compare_seeds", "2", "--compare_nj", "2",
        "--compare_configs", f"{CONTROL} {REF}", "--compare_reference", REF,
        "--compare_topline", SUP + ":label=topline", "--compare_budget_scale", "2"]


@pytest.fixture(scope="module")
def evidence(tmp_path_factory):
    d = make_recipe_copy(tmp_path_factory.mktemp("recipe"))
    sweep = os.path.join(d, "..", "sweep_sup.txt")
    with open(sweep, "w") as f:
        f.write(f"# two points\n{SUP}\n\n{SUP}:optim_ft.lr=5e-3:scheduler_ft.name=warmuplr:"
                "scheduler_ft.warmup_steps=4:scheduler_ft.restarts=[0.5]\n")
    run_recipe(d, *ARGS[:6], "--stop_stage", "5")
    p = run_recipe(d, *ARGS, "--stage", "9", "--stop_stage", "9", "--compare_sweeps", sweep)
    return d, p, os.path.join(d, "exp", "compare", f"p{PASSES}")


def rows_of(table):
    return [line for line in table.splitlines() if line.startswith("|") and not line.startswith(("|method", "|---",
                                                                                                    "|point"))]


def summary(run):
    with open(os.path.join(run, "train_summary.yaml")) as f:
        return yaml.safe_load(f)


def test_every_row_has_one_run_per_seed_with_a_different_model(evidence):
    d, _, cdir = evidence
    rows = [r for r in os.listdir(cdir) if os.path.isdir(os.path.join(cdir, r))]
    tuned = [r for r in rows if len(os.listdir(os.path.join(cdir, r))) > 2]
    assert len(tuned) == 4  # the chosen sweep point, the control, the reference, the topline
    for r in tuned:
        runs = [os.path.join(cdir, r, s) for s in ("seed0", "seed1")]
        seeds = [yaml.safe_load(open(os.path.join(x, "config.yaml")))["seed"] for x in runs]
        assert seeds == [0, 1]
        models = [open(os.path.join(x, "model.pth"), "rb").read() for x in runs]
        assert models[0] != models[1], r
        tsv = open(os.path.join(cdir, r, "wer_per_seed.tsv")).read().splitlines()
        assert len(tsv) == 3 and tsv[0].startswith("seed\tdev_wer\ttest_wer")
    table = open(os.path.join(cdir, "RESULTS.md")).read()
    for line in rows_of(table.split("\nSignificance")[0]):
        assert line.split("|")[2] == "2" and re.search(r"\|\d+\.\d ± \d+\.\d\|\d+\.\d ± \d+\.\d\|", line), line


def test_the_schedule_control_makes_no_unsupervised_pass_and_blJUSTs_supervised_steps(evidence):
    _, _, cdir = evidence
    ref = summary(os.path.join(cdir, "train_bljust_tiny_reuse_lower_grad-true", "seed0"))
    ctl = summary(os.path.join(cdir, "train_bljust_tiny_reuse_lower_grad-true_k-0_gamma0-0_gamma_max-0_lower_level-false",
                               "seed0"))
    assert ctl["passes_unsup"] == 0 and ref["passes_unsup"] > 0
    assert ctl["passes_sup"] == ref["passes_sup"]
    assert (ctl["phases"]["joint"], ctl["phases"]["finetune"]) == (ref["phases"]["joint"], ref["phases"]["finetune"])
    assert ctl["phases"]["explore"] == 0


def test_the_p_values_in_the_table_are_sc_stats_seed_by_seed(evidence):
    _, _, cdir = evidence
    table = open(os.path.join(cdir, "RESULTS.md")).read()
    head = next(line for line in table.splitlines() if line.startswith("|method"))
    assert head.endswith("|p vs BL-JUST (BEST-RQ), tiny [reuse_lower_grad=true] on test: MAPSSWE / sign, per seed|")
    lines = rows_of(table.split("\nSignificance")[0])
    ref = os.path.join(cdir, "train_bljust_tiny_reuse_lower_grad-true")
    others = [os.path.join(cdir, r) for r in sorted(os.listdir(cdir))
              if os.path.isdir(os.path.join(cdir, r, "seed1")) and os.path.join(cdir, r) != ref]
    assert len(others) == 3
    for row in others:
        s0 = summary(os.path.join(row, "seed0"))
        label = s0["label"] + (f" [{s0['variant']}]" if s0.get("variant") else "")
        line = next(x for x in lines if x.startswith(f"|{label}|") or x.startswith(f"|{label} (tuned)|"))
        pairs = line.split("|")[-2].split("; ")
        assert len(pairs) == 2
        for seed, pair in enumerate(pairs):
            sc = os.path.join(f"seed{seed}", "decode_beam4_model", "test", "score_wer")
            a, b = os.path.join(ref, sc), os.path.join(row, sc)
            s = compare(os.path.join(a, "ref.trn"), os.path.join(a, "hyp.trn"), os.path.join(b, "hyp.trn"))
            assert pair == " / ".join("<0.001" if p < 0.001 else f"{p:.3f}" for p in (s.mapsswe_p, s.sign_p))
    assert next(x for x in lines if x.startswith("|BL-JUST (BEST-RQ), tiny [reuse_lower_grad=true]|")).endswith(
        "|reference|")
    assert "Significance (both tests at p < 0.05, seed by seed):" in table


def test_the_topline_trains_on_the_labeled_and_unlabeled_sets_with_their_transcripts(evidence):
    d, _, cdir = evidence
    top = os.path.join(d, "dump", "fbank", "train_and_train_unlab")
    n = sum(1 for _ in open(os.path.join(top, "text")))
    n_lab = sum(1 for _ in open(os.path.join(d, "dump", "fbank", "train", "text")))
    n_unlab = sum(1 for _ in open(os.path.join(d, "dump", "fbank", "train_unlab", "feats.scp")))
    assert n == n_lab + n_unlab
    toplines = [r for r in os.listdir(cdir) if r.startswith("topline_train_bljust_tiny_budget_fractions-_0_0_1__label-topline")]
    assert len(toplines) == 1
    run = os.path.join(cdir, toplines[0], "seed0")
    top = yaml.safe_load(open(os.path.join(run, "config.yaml")))
    assert top["train_data_dir"] == "dump/fbank/train_and_train_unlab" and top["label"] == "topline"
    # the topline takes the recipe the sweep chose (--compare_topline_tuned true, the default)
    tuned = [r for r in os.listdir(cdir) if r.startswith("train_bljust_tiny_budget_fractions")
             and os.path.isdir(os.path.join(cdir, r, "seed1"))]
    assert len(tuned) == 1
    chosen = yaml.safe_load(open(os.path.join(cdir, tuned[0], "seed0", "config.yaml")))
    assert (top["optim_ft"], top["scheduler_ft"]) == (chosen["optim_ft"], chosen["scheduler_ft"])
    table = open(os.path.join(cdir, "RESULTS.md")).read()
    assert "Share of the gap to the topline" in table


@pytest.mark.parametrize("entry, chosen, expected", [
    ("t.yaml:label=topline", "s.yaml:optim_ft.lr=5e-3:label=x:scheduler_ft.restarts=[0.5]",
     "t.yaml:label=topline:optim_ft.lr=5e-3:scheduler_ft.restarts=[0.5]"),
    ("t.yaml", "s.yaml", "t.yaml"),
    ("t.yaml:optim_ft.lr=1e-3", "s.yaml:optim.lr=5e-3:optim_ft.lr=4e-3", "t.yaml:optim_ft.lr=1e-3:optim.lr=5e-3"),
])
def test_the_topline_entry_takes_the_chosen_points_settings_but_keeps_its_own(entry, chosen, expected):
    script = os.path.join(os.path.dirname(__file__), "..", "..", "egs", "TEMPLATE", "asr1", "compare.sh")
    out = subprocess.run(["bash", "-euc", f'. "{script}"; tuned_entry "$1" "$2"', "_", entry, chosen],
                         capture_output=True, text=True, check=True).stdout
    assert out == expected + "\n"


def test_the_sweep_is_chosen_on_dev_wer_and_its_point_becomes_the_tuned_row(evidence):
    _, p, cdir = evidence
    table = open(os.path.join(cdir, "RESULTS.md")).read()
    assert "2 points, one seed each, chosen by dev WER" in table
    points = [line for line in table.split("\nSweep for")[1].splitlines() if line.startswith("|BL-JUST")]
    chosen = [line for line in points if line.endswith("|yes|")]
    assert len(points) == 2 and len(chosen) == 1
    label = chosen[0].split("|")[1]
    assert any(line.startswith(f"|{label} (tuned)|2|") for line in table.splitlines())
    devs = [float(line.split("|")[2]) for line in points]
    assert float(chosen[0].split("|")[2]) == min(devs)
    assert "chosen by dev WER:" in p.stderr


def test_the_budget_curve_trains_the_tuned_row_the_best_reference_and_the_topline_at_the_scaled_budget(evidence):
    d, _, cdir = evidence
    big = os.path.join(d, "exp", "compare", f"p{2 * PASSES}")
    table = open(os.path.join(big, "RESULTS.md")).read()
    rows = rows_of(table.split("\nSignificance")[0])
    assert len(rows) == 3 and rows[1].endswith("|reference|")
    assert " (tuned)|" in rows[0] and rows[2].startswith("|topline")  # the sweep's point keeps its label
    assert "Share of the gap to the topline" in table
    assert any(r.startswith("topline_") for r in os.listdir(big))
    for line in rows:
        total = int(re.search(r"(\d+) \+ (\d+) = (\d+)", line).group(3))
        assert abs(total - 2 * PASSES) <= 3
    whole = open(os.path.join(d, "exp", "compare", "RESULTS.md")).read()
    assert f"# Comparison at {PASSES} encoder passes" in whole and f"# Comparison at {2 * PASSES} encoder passes" in whole
