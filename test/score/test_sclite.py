"""Scoring with sclite: trn files, numbers checked against our own edit distance, glm, stm."""
import os

import pytest

from bljust.bin import score as score_bin
from bljust.score import sclite as sc
from bljust.score.trn import (apply_glm_words, find_csrfilt, glm_filter_trn, read_glm, read_trn, stm_to_text,
                              to_chars, write_trn)

try:
    sc.find_sclite()
    HAVE_SCLITE = True
except sc.ScliteNotFound:
    HAVE_SCLITE = False
needs_sclite = pytest.mark.skipif(not HAVE_SCLITE, reason="sclite not installed (tools/setup.sh)")


def levenshtein(ref, hyp):
    """(subs, dels, ins) of one minimal alignment, by plain dynamic programming."""
    R, H = len(ref), len(hyp)
    d = [[(0, 0, 0, 0)] * (H + 1) for _ in range(R + 1)]  # (cost, S, D, I)
    for i in range(1, R + 1):
        d[i][0] = (i, 0, i, 0)
    for j in range(1, H + 1):
        d[0][j] = (j, 0, 0, j)
    for i in range(1, R + 1):
        for j in range(1, H + 1):
            c, s, dl, n = d[i - 1][j - 1]
            sub = (c + (ref[i - 1] != hyp[j - 1]), s + (ref[i - 1] != hyp[j - 1]), dl, n)
            c, s, dl, n = d[i - 1][j]
            de = (c + 1, s, dl + 1, n)
            c, s, dl, n = d[i][j - 1]
            ins = (c + 1, s, dl, n + 1)
            d[i][j] = min(sub, de, ins)
    return d[R][H][1:]


REF = {"spk-1-u1": "the cat sat on the mat", "spk-1-u2": "hello world", "spk2-u3": "one two three four",
       "spk2-u4": "nothing was said"}
HYP = {"spk-1-u1": "the bat sat on mat", "spk-1-u2": "hello big world", "spk2-u3": "one two three four",
       "spk2-u4": ""}
U2S = {"spk-1-u1": "spk-1", "spk-1-u2": "spk-1", "spk2-u3": "spk2", "spk2-u4": "spk2"}


def test_trn_format(tmp_path):
    p = str(tmp_path / "x.trn")
    write_trn(p, {"b-2": "  b   words ", "a-1": "a", "c-3": ""}, {"a-1": "spk-a", "b-2": "spkb", "c-3": "spkb"})
    assert open(p).read() == "a (spk_a-a-1)\nb words (spkb-b-2)\n(spkb-c-3)\n"
    assert read_trn(p) == {"spk_a-a-1": "a", "spkb-b-2": "b words", "spkb-c-3": ""}
    assert to_chars("ab cd") == "a b <space> c d"
    assert to_chars("a <unk> [noise]") == "a <space> <unk> <space> [noise]"


@needs_sclite
def test_sclite_agrees_with_own_edit_distance(tmp_path):
    res = sc.score(str(tmp_path), REF, HYP, ["wer", "cer"], U2S)
    S = D = I = N = 0
    for u in REF:
        s, d, i = levenshtein(REF[u].split(), HYP[u].split())
        S, D, I, N = S + s, D + d, I + i, N + len(REF[u].split())
    w = res["wer"]
    assert (w["n_Sub"], w["n_Del"], w["n_Ins"]) == (S, D, I) == (1, 4, 1)
    assert (w["Snt"], w["Wrd"]) == (4, N)
    assert w["Err"] == pytest.approx(round(100 * (S + D + I) / N, 1))
    assert w["S.Err"] == pytest.approx(75.0)
    c = res["cer"]
    errs = sum(sum(levenshtein(to_chars(REF[u]).split(), to_chars(HYP[u]).split())) for u in REF)
    n = sum(len(to_chars(REF[u]).split()) for u in REF)
    assert c["n_Err"] == errs and c["Wrd"] == n
    report = open(tmp_path / "score_wer" / "result.txt").read()
    assert "spk_1" in report and "spk2" in report  # grouped by speaker, '-' in the speaker kept apart
    assert sorted(os.listdir(tmp_path / "score_wer")) == ["hyp.trn", "ref.trn", "result.txt"]


@needs_sclite
def test_ter_and_missing_hypothesis(tmp_path):
    res = sc.score(str(tmp_path), {"u1": "ab c"}, {"u1": "ab"}, ["ter"], None,
                   hyp_tokens={"u1": "▁a b"}, ref_tokenize=lambda t: "▁a b ▁c")
    assert res["ter"]["n_Del"] == 1 and res["ter"]["Wrd"] == 3
    with pytest.raises(ValueError, match="1 utterance\\(s\\) have no hypothesis: u2"):
        sc.score(str(tmp_path), {"u1": "a", "u2": "b"}, {"u1": "a"}, ["wer"])


def test_sclite_missing_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(sc, "REPO", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(sc.ScliteNotFound, match="tools/setup.sh.*--sclite"):
        sc.find_sclite()
    with pytest.raises(sc.ScliteNotFound, match="no such executable"):
        sc.find_sclite(str(tmp_path / "nope"))


GLM = """;; test rules
* name "t"
* desc "t"
* format = 'NIST1'
* max_nrules = '1000'
* copy_no_hit = 'T'
* case_sensitive = 'F'
WANNA => WANT TO / [ ] __ [ ]
GONNA => GOING TO / [ ] __ [ ]
<NOISE> => / [ ] __ [ ]
"""


@pytest.mark.parametrize("use_csrfilt", [True, False])
def test_glm_filter(tmp_path, use_csrfilt):
    if use_csrfilt and not find_csrfilt():
        pytest.skip("csrfilt.sh (SCTK) not installed")
    glm = tmp_path / "x.glm"
    glm.write_text(GLM)
    src, out = str(tmp_path / "in.trn"), str(tmp_path / "out.trn")
    write_trn(src, {"u1": "i wanna go <noise> well-known", "u2": ""})
    how = glm_filter_trn(src, out, str(glm), "hyp", use_csrfilt=use_csrfilt)
    assert how == ("csrfilt.sh" if use_csrfilt else "python")
    assert read_trn(out) == {"u1-u1": "i want to go well known", "u2-u2": ""}


def test_python_glm_rules(tmp_path):
    glm = tmp_path / "x.glm"
    glm.write_text(GLM + "<noise> => / [ ] __ [ ]\n[UM] => / [ ] __ [ ]\nOK => { OK / OKAY } / [ ] __ [ ]\n")
    rules = read_glm(str(glm))
    # as csrfilt.sh: a bracketed left side [UM] matches the word um, not the token [um]
    assert apply_glm_words("Gonna <noise> um [um] OK", rules) == "going to [um] { ok / okay }"


@needs_sclite
def test_score_cli_with_stm_and_glm(tmp_path):
    data, dec = tmp_path / "data", tmp_path / "decode"
    data.mkdir()
    dec.mkdir()
    (data / "segments").write_text("talk1-0000100-0000250 talk1 1.00 2.50\ntalk1-0000300-0000420 talk1 3.00 4.20\n")
    (data / "utt2spk").write_text("talk1-0000100-0000250 talk1\ntalk1-0000300-0000420 talk1\n")
    (data / "stm").write_text(
        ";; comment\n"
        "talk1 1 talk1 0.00 1.00 <o,f0,male> ignore_time_segment_in_scoring\n"
        "talk1 1 talk1 1.00 2.50 <o,f0,male> we wanna win\n"
        "talk1 1 talk1 3.00 4.2 <o,f0,male> it is gonna rain\n")
    (data / "glm").write_text(GLM)
    (dec / "text").write_text("talk1-0000100-0000250 we want to win\ntalk1-0000300-0000420 it is going to rain\n")
    assert stm_to_text(str(data / "stm"), str(data / "segments"))["talk1-0000300-0000420"] == "it is gonna rain"
    rc = score_bin.main(["--data_dir", str(data), "--decode_dir", str(dec), "--stm", str(data / "stm"),
                         "--glm", str(data / "glm"), "--metrics", "wer"])
    assert rc == 0
    assert sc.parse_result(str(dec / "score_wer" / "result.txt"))["Err"] == 0.0
    rc = score_bin.main(["--data_dir", str(data), "--decode_dir", str(dec), "--stm", str(data / "stm"),
                         "--metrics", "wer"])
    assert rc == 0 and sc.parse_result(str(dec / "score_wer" / "result.txt"))["n_Err"] > 0
