"""The comparison table of stage 9: rows over seeds (mean ± std), per-seed files, sc_stats
p-values of the reference row against each row, and sweeps chosen on dev WER."""
import os
import random
import re
import statistics

import pytest
import yaml

from bljust.bin.compare_results import main
from bljust.score.compare import render, significance, summarise_row
from bljust.score.sclite import run_sclite
from bljust.score.significance import compare

WORDS = "the cat sat on a mat and dog ran far away from home with red blue hat".split()
TAG = "decode_beam4_model"


def _trn(path, rows):
    with open(path, "w") as f:
        for i, words in enumerate(rows):
            f.write(" ".join(words) + f" (spk{i % 12:02d}-utt{i:04d})\n")


def make_run(run, err, seed, label="supervised only", variant=None, n=240):
    """A finished run: train_summary.yaml and scored dev/test decodings with error rate `err`."""
    os.makedirs(run)
    with open(os.path.join(run, "train_summary.yaml"), "w") as f:
        yaml.safe_dump({"label": label, "variant": variant, "steps": 800, "passes_sup": 400, "passes_unsup": 800,
                        "wall_seconds": 60.0 + seed, "phases": {"explore": 300, "joint": 150, "finetune": 300,
                                                                  "k": 2}}, f)
    for k, s in enumerate(("dev", "test")):
        rng, hrng = random.Random(k), random.Random(1000 * seed + 7 * k + int(err * 1000))
        ref = [[rng.choice(WORDS) for _ in range(10)] for _ in range(n)]
        hyp = [[hrng.choice(WORDS) if hrng.random() < err else w for w in r] for r in ref]
        d = os.path.join(run, TAG, s, "score_wer")
        os.makedirs(d)
        _trn(os.path.join(d, "ref.trn"), ref)
        _trn(os.path.join(d, "hyp.trn"), hyp)
        run_sclite(os.path.join(d, "ref.trn"), os.path.join(d, "hyp.trn"), os.path.join(d, "result.txt"))


def make_row(root, name, err, seeds=(0, 1, 2), **kw):
    row = os.path.join(str(root), name)
    for s in seeds:
        make_run(os.path.join(row, f"seed{s}"), err, s, **kw)
    return row


def test_a_row_over_seeds_gives_mean_and_std_and_per_seed_files(tmp_path):
    ref = make_row(tmp_path, "bljust", 0.05, label="BL-JUST (CPC)")
    base = make_row(tmp_path, "sup", 0.25)
    same = make_row(tmp_path, "ctl", 0.05, label="schedule control")
    out = tmp_path / "RESULTS.md"
    assert main([base, same, ref, "--out", str(out), "--reference", ref, "--significance_sets", "test"]) == 0
    table = out.read_text()
    row = summarise_row(base)
    assert sorted(row["runs"]) == [0, 1, 2]
    m, s = statistics.fmean(row["wer"]["test"]), statistics.stdev(row["wer"]["test"])
    assert s > 0  # the seeds' hypotheses differ
    line = next(x for x in table.splitlines() if x.startswith("|supervised only|"))
    assert f"|3|{statistics.fmean(row['wer']['dev']):.1f} ± " in line and f"|{m:.1f} ± {s:.1f}|" in line
    assert "|1 minute and 1 second|" in line  # mean training time of 60, 61, 62 s
    # the p-values in the table are sc_stats', seed by seed
    cells = line.split("|")[-2].split("; ")
    assert len(cells) == 3
    for seed, cell in enumerate(cells):
        run_ref, run_base = (os.path.join(r, f"seed{seed}", TAG, "test", "score_wer") for r in (ref, base))
        direct = compare(os.path.join(run_ref, "ref.trn"), os.path.join(run_ref, "hyp.trn"),
                         os.path.join(run_base, "hyp.trn"))
        mp, sp = cell.split(" / ")
        assert mp == ("<0.001" if direct.mapsswe_p < 0.001 else f"{direct.mapsswe_p:.3f}")
        assert sp == ("<0.001" if direct.sign_p < 0.001 else f"{direct.sign_p:.3f}")
    assert next(x for x in table.splitlines() if x.startswith("|BL-JUST (CPC)|")).endswith("|reference|")
    # the words under the table: a planted large difference is significant, an equal one is not
    assert re.search(r"- BL-JUST \(CPC\) against supervised only on test: .* lower\); significant at p < 0.05 "
                     r"in both tests for every seed \(3 of 3\)", table), table
    assert re.search(r"- BL-JUST \(CPC\) against schedule control on test: .*not significant for seed 0", table)
    # per-seed figures kept in the row's folder
    tsv = open(os.path.join(base, "wer_per_seed.tsv")).read().splitlines()
    assert tsv[0].split("\t")[:3] == ["seed", "dev_wer", "test_wer"]
    assert [float(x.split("\t")[2]) for x in tsv[1:]] == pytest.approx(row["wer"]["test"], abs=0.01)


def test_a_sweep_is_chosen_on_the_dev_wer_of_its_first_seed(tmp_path, capsys):
    pts = [make_row(tmp_path, f"p{i}", e, seeds=(0,), variant=f"lr={e}") for i, e in enumerate((0.3, 0.1, 0.2))]
    assert main(["--pick_best", "dev", *pts]) == 0
    assert capsys.readouterr().out.strip() == pts[1]
    # the chosen point gets more seeds, worse ones: the choice stays with the first seed's figure
    make_run(os.path.join(pts[1], "seed1"), 0.6, 1, variant="lr=0.1")
    assert main(["--pick_best", "dev", *pts]) == 0
    assert capsys.readouterr().out.strip() == pts[1]
    assert main(["--pick_best", "dev", "--pick_mean", *pts]) == 0  # the best reference: by the mean
    assert capsys.readouterr().out.strip() == pts[2]
    # stage 9 stopped while the chosen point's seed 2 trained, then started again: the sweep is
    # picked again before that seed has finished, on the first seeds alone
    os.makedirs(os.path.join(pts[1], "seed2"))  # a training under way: no summary, no decoding yet
    assert main(["--pick_best", "dev", *pts]) == 0
    assert capsys.readouterr().out.strip() == pts[1]
    os.rmdir(os.path.join(pts[1], "seed2"))
    lst = tmp_path / "sweep.txt"
    lst.write_text("\n".join(pts) + "\n")
    out = tmp_path / "R.md"
    assert main([pts[1], "--out", str(out), "--sweep", str(lst)]) == 0
    table = out.read_text()
    assert "|supervised only [lr=0.1] (tuned)|2|" in table
    assert "3 points, one seed each, chosen by dev WER" in table
    chosen = [x for x in table.splitlines() if x.endswith("|yes|")]
    assert len(chosen) == 1 and chosen[0].startswith("|supervised only [lr=0.1]|")


def test_rows_scored_on_different_references_are_refused(tmp_path, capfd):
    a = make_row(tmp_path, "a", 0.1, seeds=(0,))
    b = make_row(tmp_path, "b", 0.1, seeds=(0,), n=200)
    assert main([a, b, "--out", str(tmp_path / "R.md"), "--reference", a]) == 1
    assert "not scored on the same references" in capfd.readouterr().err


def test_a_single_run_folder_is_a_row_of_one_seed():
    row = {"exp": "exp/compare/p1200/x", "label": "supervised only", "passes_sup": 1200, "passes_unsup": 0,
           "steps": 1200, "wall_seconds": 75.0, "runs": {0: {}}, "wer": {"dev": [41.25], "test": [40.0]},
           "phases": {"explore": 0, "joint": 0, "finetune": 1200, "k": 1}}
    lines = render([row]).splitlines()
    assert lines[4] == ("|method|seeds|dev WER|test WER|training time|passes (sup + unsup = total)|steps"
                        "|N1 / N2 / N3 steps|")
    assert lines[6] == "|supervised only|1|41.2|40.0|1 minute and 15 seconds|1200 + 0 = 1200|1200|0 / 0 / 1200|"


def test_significance_uses_the_seeds_both_rows_have(tmp_path):
    a = make_row(tmp_path, "a", 0.05, seeds=(0, 1))
    b = make_row(tmp_path, "b", 0.3, seeds=(1, 2))
    res = significance(summarise_row(a), summarise_row(b), "test")
    assert list(res) == [1] and res[1].significant()
    assert os.path.isdir(os.path.join(b, "seed1", "significance", "test_vs_a"))


def test_gap_share_is_undefined_when_the_topline_is_no_better():
    """A topline that does not beat the baseline leaves no gap: no share of it is printed
    (a run at equal passes once gave '-178% of the gap'), only what each WER was."""
    from bljust.score.compare import _gap_line
    assert _gap_line("R", "B", "test", 70.0, 60.0, 65.0) == \
        "- R on test: 50% of the gap from B (70.0) to the topline (60.0)"
    line = _gap_line("R", "B", "test", 69.9, 75.1, 60.5)
    assert "undefined" in line and "%" not in line and "75.1" in line and "69.9" in line
    assert "undefined" in _gap_line("R", "B", "test", 70.0, 70.0, 60.0)


def test_gap_share_past_the_topline_says_the_topline_is_no_upper_bound():
    """A reference below the topline closes more than the whole gap (a mini_synth topline
    under-trained at the default budget gave '522% of the gap'): the line says what that means."""
    from bljust.score.compare import _gap_line
    line = _gap_line("R", "B", "test", 69.9, 68.1, 60.5)
    assert line.startswith("- R on test: 522% of the gap") and "no upper bound" in line and "not converged" in line
    assert "no upper bound" not in _gap_line("R", "B", "test", 70.0, 60.0, 65.0)
    worse = _gap_line("R", "B", "test", 69.9, 68.1, 95.8)  # mini_synth's BL-JUST (CPC): '-1439%'
    assert worse.startswith("- R on test: -1439% of the gap") and "worse than B" in worse
    assert "worse than" not in _gap_line("R", "B", "test", 70.0, 60.0, 65.0)


def test_a_tuned_row_without_its_sweep_is_labeled_and_is_the_gaps_baseline(tmp_path, capfd):
    """The budget curve retrains the sweep's chosen point without its sweep: --tuned labels it
    and makes it the baseline of the gap to the topline, whatever the row order."""
    ref = make_row(tmp_path, "bljust", 0.10, seeds=(0,), label="BL-JUST (BEST-RQ)")
    sup = make_row(tmp_path, "sup", 0.30, seeds=(0,), variant="lr=2e-3")
    top = make_row(tmp_path, "top", 0.05, seeds=(0,), label="topline")
    out = tmp_path / "R.md"
    assert main([ref, sup, top, "--out", str(out), "--reference", ref, "--tuned", sup, "--topline", top]) == 0
    table = out.read_text()
    assert any(x.startswith("|supervised only [lr=2e-3] (tuned)|1|") for x in table.splitlines())
    assert "of the gap from supervised only [lr=2e-3] (tuned)" in table
    assert main([ref, sup, "--out", str(out), "--tuned", str(tmp_path / "nope")]) == 1
    assert "--tuned" in capfd.readouterr().err
