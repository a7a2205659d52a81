"""sc_stats is run on planted hypothesis pairs and its p-values are parsed."""
import random

import pytest

from bljust.score.significance import compare, parse_mapsswe, parse_sign, sign_test_p

WORDS = "the cat sat on a mat and dog ran far away from home with red blue hat".split()


def _write(path, rows):
    with open(path, "w") as f:
        for i, words in enumerate(rows):
            f.write(" ".join(words) + f" (spk{i % 20:02d}-utt{i:04d})\n")


def _planted(tmp_path, err_a, err_b, n=400, seed=0):
    rng = random.Random(seed)
    ref, a, b = [], [], []
    for _ in range(n):
        r = [rng.choice(WORDS) for _ in range(12)]
        ref.append(r)
        for hyp, p in ((a, err_a), (b, err_b)):
            hyp.append([rng.choice(WORDS) if rng.random() < p else w for w in r])
    paths = [tmp_path / f"{x}.trn" for x in ("ref", "a", "b")]
    for p, rows in zip(paths, (ref, a, b)):
        _write(p, rows)
    return [str(p) for p in paths]


def test_a_planted_large_difference_is_significant(tmp_path):
    ref, a, b = _planted(tmp_path, 0.05, 0.20)
    s = compare(ref, a, b, "bljust", "baseline", work_dir=str(tmp_path / "work"))
    assert s.wer_a < s.wer_b
    assert s.mapsswe_z < 0 and s.mapsswe_p < 1e-6
    assert s.n_speakers == 20 and s.sign_p < 1e-3
    assert s.significant()
    assert (tmp_path / "work" / "compare_mapsswe.stats.mapsswe").exists()


def test_equal_error_rates_are_not_significant(tmp_path):
    ref, a, b = _planted(tmp_path, 0.10, 0.10, seed=1)
    s = compare(ref, a, b, "x", "y")
    assert s.mapsswe_p > 0.05 and s.sign_p > 0.05
    assert not s.significant()


def test_parse_mapsswe_p_value_from_z():
    line = ("MTCH_PR_RESULTS (systems: a b) (# segs: 10) (Seg per Sent: 1.0) (% Error:  6.42 28.50) "
            "(mean: -1.1) (std dev: 1.1) (Z Stat: -1.960) (Stat Diff: Yes)")
    z, p, ea, eb, segs = parse_mapsswe(line)
    assert (z, ea, eb, segs) == (-1.96, 6.42, 28.5, 10)
    assert p == pytest.approx(0.05, abs=1e-3)


def test_bad_inputs_name_the_problem(tmp_path):
    ref, a, b = _planted(tmp_path, 0.1, 0.1, n=10)
    with pytest.raises(FileNotFoundError, match="nope.trn"):
        compare(ref, a, str(tmp_path / "nope.trn"))
    with pytest.raises(ValueError, match="system names"):
        compare(ref, a, b, "same", "same")


def test_sign_test_p_is_the_exact_two_sided_binomial():
    assert sign_test_p(0, 0) == 1.0 and sign_test_p(5, 5) == 1.0
    assert sign_test_p(0, 10) == pytest.approx(2 / 1024) and sign_test_p(10, 0) == sign_test_p(0, 10)
    assert sign_test_p(2, 8) == pytest.approx(2 * (1 + 10 + 45) / 1024)
    assert sign_test_p(9, 10) == pytest.approx(1.0)  # min(1, 2 * 0.5 + ...)
    assert sign_test_p(5, 15) == pytest.approx(0.04139, abs=1e-5)


REPORT = """
No. Speakers with Positive Speaker Word Error Rate (%) Differences = N(+) =  9
No. Speakers with Negative Speaker Word Error Rate (%) Differences = N(-) = 10
   No. Speakers with No Speaker Word Error Rate (%) Differences = N(0) = 21
          MIN(N(-),N(+))      P(MIN(N(-),N(+)) | N=40)
           19                 0.001
        There were N(-)=21 negative differences , the probability of
        it occurring is 0.001, therefore the null hypothesis is REJECTED
"""


def test_the_sign_p_is_computed_from_the_counts_not_taken_from_sc_stats():
    """sc_stats' own table says 0.001 for 19 against 21 of 40 speakers; 9 against 10 with 21 ties
    is no evidence at all."""
    p, n = parse_sign(REPORT)
    assert n == 40 and p == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"no N\(-\) count"):
        parse_sign(REPORT.replace("N(-) = 10", ""))


def test_forty_speakers_with_equal_error_rates_are_not_significant(tmp_path):
    """Where sc_stats' sign-test table goes wrong (40 speakers), the p-value stays honest."""
    rng = random.Random(3)
    ref, a, b = [], [], []
    for _ in range(400):
        r = [rng.choice(WORDS) for _ in range(12)]
        ref.append(r)
        for hyp in (a, b):
            hyp.append([rng.choice(WORDS) if rng.random() < 0.1 else w for w in r])
    paths = []
    for name, rows in (("ref", ref), ("a", a), ("b", b)):
        path = tmp_path / f"{name}.trn"
        with open(path, "w") as f:
            for i, words in enumerate(rows):
                f.write(" ".join(words) + f" (spk{i % 40:02d}-utt{i:04d})\n")
        paths.append(str(path))
    s = compare(*paths, "x", "y")
    assert s.n_speakers == 40 and s.sign_p > 0.05 and not s.significant()
