"""RESULTS.md from a tree of sclite reports."""
import os

import pytest

from bljust.bin import make_results
from bljust.score import sclite as sc

try:
    sc.find_sclite()
    HAVE_SCLITE = True
except sc.ScliteNotFound:
    HAVE_SCLITE = False


@pytest.mark.skipif(not HAVE_SCLITE, reason="sclite not installed (tools/setup.sh)")
def test_make_results_tables(tmp_path):
    exp = tmp_path / "exp"
    d1 = exp / "bljust_a" / "decode_test"
    sc.score(str(d1), {"u1": "a b c d", "u2": "e f"}, {"u1": "a x c d", "u2": "e f"}, ["wer", "cer"])
    sc.score(str(exp / "bljust_a" / "decode_dev"), {"u1": "a b"}, {"u1": "a b"}, ["wer"])
    (exp / "bljust_a" / "config.yaml").write_text("x: 1\n")
    os.makedirs(exp / "broken" / "decode_test" / "score_wer")
    (exp / "broken" / "decode_test" / "score_wer" / "result.txt").write_text("sclite crashed\n")
    assert make_results.main([str(exp)]) == 0
    md = (exp / "RESULTS.md").read_text()
    assert "|dataset|Snt|Wrd|Corr|Sub|Del|Ins|Err|S.Err|" in md
    assert "|decode_test|2|6|83.3|16.7|0.0|0.0|16.7|50.0|" in md
    assert "|decode_dev|1|2|100.0|0.0|0.0|0.0|0.0|0.0|" in md
    assert "## bljust_a" in md and "### CER" in md and "### WER" in md and "broken" not in md
    assert "torch version" in md and "bljust version" in md and "exp/bljust_a/config.yaml" in md
    # WER first (as ESPnet), rows sorted by decode dir
    assert md.index("### WER") < md.index("|decode_dev|") < md.index("|decode_test|") < md.index("### CER")
    assert make_results.main([str(exp), "--output", str(tmp_path / "R.md"), "--note", "See stage 9.", "--note", "B"]) == 0
    md = (tmp_path / "R.md").read_text()
    assert md.index("# RESULTS\n\nSee stage 9.\n\nB\n\n## Environment") > 0
    assert make_results.main([str(tmp_path / "nope")]) == 1


@pytest.mark.skipif(not HAVE_SCLITE, reason="sclite not installed (tools/setup.sh)")
def test_driver_layout_decode_tag_then_set(tmp_path):
    """exp/<exp>/<inference_tag>/<set>/score_*: from the exp root and from the experiment itself."""
    asr = tmp_path / "exp" / "asr_x"
    for s in ("test_clean", "dev"):
        sc.score(str(asr / "decode_beam10_model" / s), {"u": "a b"}, {"u": "a c"}, ["wer"])
    (asr / "config.yaml").write_text("x: 1\n")
    assert make_results.main([str(tmp_path / "exp")]) == 0
    md = (tmp_path / "exp" / "RESULTS.md").read_text()
    assert "## asr_x" in md and "|decode_beam10_model/test_clean|1|2|50.0|50.0|" in md
    assert make_results.main([str(asr), "--out", str(asr / "RESULTS.md")]) == 0
    md = (asr / "RESULTS.md").read_text()
    assert "## asr_x" in md and "|decode_beam10_model/dev|1|2|" in md and "asr_x/config.yaml" in md
