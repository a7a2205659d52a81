"""Kaldi data directories: validation, fixing, split/subset/combine, renaming, speed perturbation."""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from bljust.data import datadir_ops as ops
from bljust.data.datadir import DataDir, fix_data_dir, validate_data_dir
from bljust.utils.fileio import FormatError

SPEAKERS = {"spkA": 3, "spkB": 2, "spkC": 4, "spkD": 1}


def make_dir(path, segments=False):
    """4 speakers, 10 utterances; with segments, two utterances per recording."""
    os.makedirs(path, exist_ok=True)
    utts = [f"{s}-u{i}" for s, n in SPEAKERS.items() for i in range(n)]
    w = lambda name, lines: open(os.path.join(path, name), "w").write("".join(l + "\n" for l in lines))  # noqa
    w("text", [f"{u} words of {u}" for u in utts])
    w("utt2spk", [f"{u} {u.split('-')[0]}" for u in utts])
    w("spk2utt", [f"{s} " + " ".join(u for u in utts if u.startswith(s + "-")) for s in SPEAKERS])
    w("utt2dur", [f"{u} {1 + i * 0.5}" for i, u in enumerate(utts)])
    if segments:
        w("segments", [f"{u} {u.split('-')[0]}-r{int(u[-1]) // 2} {int(u[-1]) % 2 * 5} {int(u[-1]) % 2 * 5 + 2.5}"
                       for u in utts])
        recos = sorted({f"{u.split('-')[0]}-r{int(u[-1]) // 2}" for u in utts})
        w("wav.scp", [f"{r} /data/{r}.wav" for r in recos])
    else:
        w("wav.scp", [f"{u} /data/{u}.wav" for u in utts])
    return path


def lines(path, name):
    with open(os.path.join(path, name)) as f:
        return f.read().splitlines()


def edit(path, name, fn):
    old = lines(path, name)
    with open(os.path.join(path, name), "w") as f:
        f.write("".join(l + "\n" for l in fn(old)))


@pytest.fixture(params=[False, True], ids=["wav", "segments"])
def good(tmp_path, request):
    return make_dir(str(tmp_path / "d"), segments=request.param)


def test_good_dir_validates(good):
    assert validate_data_dir(good) == ([], [])


def assert_error(path, *needles):
    errors, _ = validate_data_dir(path)
    assert errors, "expected a validation error"
    assert any(all(n in e for n in needles) for e in errors), errors


def test_unsorted_file_is_named_with_line(good):
    edit(good, "text", lambda ls: [ls[1], ls[0]] + ls[2:])
    assert_error(good, "text:2:", "not sorted")


def test_duplicate_key(good):
    edit(good, "utt2spk", lambda ls: ls[:2] + [ls[1]] + ls[2:])
    assert_error(good, "utt2spk:3:", "duplicate key 'spkA-u1'", "line 2")


def test_utterance_in_text_not_in_wav_scp(tmp_path):
    d = make_dir(str(tmp_path / "d"))
    edit(d, "wav.scp", lambda ls: [l for l in ls if not l.startswith("spkB-u1 ")])
    assert_error(d, "utt2spk:5:", "'spkB-u1'", "wav.scp")


def test_empty_transcript(good):
    edit(good, "text", lambda ls: [ls[0], "spkA-u1"] + ls[2:])
    assert_error(good, "text:2:", "empty transcript", "spkA-u1")


def test_utt2spk_spk2utt_disagree(good):
    edit(good, "spk2utt", lambda ls: ["spkA spkA-u0 spkA-u1 spkB-u0"] + ls[1:])
    assert_error(good, "spk2utt:1:", "'spkB-u0'", "speaker 'spkB'")


def test_segment_end_before_start(tmp_path):
    d = make_dir(str(tmp_path / "d"), segments=True)
    edit(d, "segments", lambda ls: [ls[0].rsplit(" ", 1)[0] + " 0"] + ls[1:])
    assert_error(d, "segments:1:", "spkA-u0", "end time")


def test_segment_recording_missing_from_wav_scp(tmp_path):
    d = make_dir(str(tmp_path / "d"), segments=True)
    edit(d, "wav.scp", lambda ls: ls[1:])
    assert_error(d, "segments:1:", "recording 'spkA-r0'")


def test_all_problems_reported_and_options(good):
    edit(good, "text", lambda ls: [ls[0], "spkA-u1"] + ls[2:])
    edit(good, "utt2dur", lambda ls: ls[::-1])
    errors, _ = validate_data_dir(good)
    assert any("/text:" in e for e in errors) and any("/utt2dur:" in e for e in errors)
    assert not any("/text" in e for e in validate_data_dir(good, no_text=True)[0])
    os.unlink(os.path.join(good, "wav.scp"))
    assert not any("wav.scp" in e for e in validate_data_dir(good, no_wav=True)[0])


def test_speaker_prefix_is_only_a_warning(tmp_path):
    d = make_dir(str(tmp_path / "d"))
    edit(d, "utt2spk", lambda ls: [l.split()[0] + " zz" for l in ls])
    edit(d, "spk2utt", lambda ls: ["zz " + " ".join(l.split()[0] for l in lines(d, "utt2spk"))])
    errors, warnings = validate_data_dir(d)
    assert errors == [] and "do not start with their speaker id" in warnings[0]


def test_fix_keeps_common_utterances_and_backs_up(good):
    edit(good, "text", lambda ls: [ls[1], ls[0]] + ls[3:] + ["zz-extra x"])  # unsorted, one missing, one extra
    edit(good, "utt2dur", lambda ls: ls[:-1])
    edit(good, "spk2utt", lambda ls: ls[:1])
    dropped = fix_data_dir(good)
    assert dropped["not in text"] == 1 and dropped["not in utt2dur"] == 1
    assert dropped["lines of text not in utt2spk"] == 1
    assert validate_data_dir(good)[0] == []
    assert len(lines(good, "utt2spk")) == 8
    assert len(lines(os.path.join(good, ".backup"), "utt2spk")) == 10


def test_read_write_round_trip_is_sorted(tmp_path):
    d = make_dir(str(tmp_path / "d"))
    dd = DataDir.read(d)
    dd.tables["text"]["Zebra"] = "x"  # uppercase sorts before lowercase in C order
    dd.tables["utt2spk"]["Zebra"] = "Zebra"
    dd.tables["wav.scp"]["Zebra"] = "z.wav"
    dd.tables["utt2dur"]["Zebra"] = "1"
    dd.write(str(tmp_path / "o"))
    assert lines(str(tmp_path / "o"), "text")[0].startswith("Zebra ")
    assert validate_data_dir(str(tmp_path / "o")) == ([], [])
    with pytest.raises(FormatError, match="utt2spk:3: duplicate key"):
        edit(d, "utt2spk", lambda ls: ls[:2] + [ls[1]] + ls[2:])
        DataDir.read(d)


@pytest.mark.parametrize("per_utt", [False, True])
def test_split_then_combine_is_identity(good, tmp_path, per_utt):
    out = ops.split_to_disk(good, 3, per_utt=per_utt)
    assert out.endswith("split3utt" if per_utt else "split3")
    parts = [os.path.join(out, str(i)) for i in (1, 2, 3)]
    sizes = []
    for p in parts:
        assert validate_data_dir(p)[0] == []
        sizes.append(len(lines(p, "utt2spk")))
    assert sum(sizes) == 10 and max(sizes) - min(sizes) <= (1 if per_utt else 4)
    if not per_utt:  # no speaker in two parts
        spk_sets = [{l.split()[1] for l in lines(p, "utt2spk")} for p in parts]
        assert sum(map(len, spk_sets)) == len(set.union(*spk_sets))
    comb = str(tmp_path / "comb")
    ops.combine_data_dirs([DataDir.read(p) for p in parts], parts).write(comb)
    for name in ("text", "utt2spk", "spk2utt", "wav.scp", "utt2dur") + (("segments",) if "segments" in os.listdir(good) else ()):
        assert lines(comb, name) == lines(good, name), name


def test_split_more_parts_than_speakers_is_an_error(good):
    with pytest.raises(ValueError, match="4 speakers into 5 parts"):
        ops.split_data_dir(DataDir.read(good), 5)
    assert len(ops.split_data_dir(DataDir.read(good), 5, per_utt=True)) == 5


def test_subset_modes(good, tmp_path):
    dd = DataDir.read(good)
    assert ops.subset_data_dir(dd, 3, "first").utts == dd.utts[:3]
    assert ops.subset_data_dir(dd, 2, "last").utts == dd.utts[-2:]
    assert set(ops.subset_data_dir(dd, 2, "shortest").utts) == {"spkA-u0", "spkA-u1"}  # utt2dur rises
    assert len(ops.subset_data_dir(dd, 4, "even").utts) == 4
    lst = tmp_path / "spk.list"
    lst.write_text("spkC\nnobody\n")
    sub = ops.subset_data_dir(dd, spk_list=str(lst))
    assert set(sub.utt2spk.values()) == {"spkC"} and len(sub.utts) == 4
    lst.write_text("spkD-u0\n")
    out = str(tmp_path / "sub")
    ops.subset_data_dir(dd, utt_list=str(lst)).write(out)
    assert validate_data_dir(out)[0] == [] and lines(out, "utt2spk") == ["spkD-u0 spkD"]


def test_subset_shortest_without_durations_uses_utt2num_frames(tmp_path):
    d = make_dir(str(tmp_path / "d"))
    os.unlink(os.path.join(d, "utt2dur"))
    dd = DataDir.read(d)
    dd.tables["utt2num_frames"] = {u: str(100 - i) for i, u in enumerate(dd.utts)}
    assert ops.subset_data_dir(dd, 1, "shortest").utts == [dd.utts[-1]]


def test_combine_duplicate_utterance_names_both_sources(tmp_path):
    a, b = make_dir(str(tmp_path / "a")), make_dir(str(tmp_path / "b"))
    with pytest.raises(ValueError, match=r"'spkA-u0' is in both .*a and .*b"):
        ops.combine_data_dirs([DataDir.read(a), DataDir.read(b)])


def test_copy_with_prefixes_round_trips_through_utt2uniq(good, tmp_path):
    out = str(tmp_path / "c")
    ops.copy_data_dir(DataDir.read(good), utt_prefix="x-", utt_suffix="-y", spk_prefix="x-", spk_suffix="").write(out)
    assert validate_data_dir(out) == ([], [])
    new, old = DataDir.read(out), DataDir.read(good)
    uniq = new.tables["utt2uniq"]
    assert all(u == f"x-{uniq[u]}-y" for u in new.utts)
    assert {uniq[u]: t for u, t in new.tables["text"].items()} == old.tables["text"]
    assert {u: "x-" + s for u, s in old.utt2spk.items()} == {uniq[u]: s for u, s in new.utt2spk.items()}
    if old.has("segments"):
        reco = new.segments()["x-spkA-u1-y"][0]
        assert reco == "x-spkA-r0-y" and reco in new.tables["wav.scp"]


def test_speed_perturbation(tmp_path):
    d = make_dir(str(tmp_path / "d"), segments=True)
    edit(d, "wav.scp", lambda ls: [ls[0].split()[0] + " gunzip -c a.wav.gz |"] + ls[1:])
    out = str(tmp_path / "sp")
    ops.perturb_speed(DataDir.read(d), "0.9").write(out)
    assert validate_data_dir(out) == ([], [])
    sp = DataDir.read(out)
    assert all(u.startswith("sp0.9-") for u in sp.utts)
    assert all(s.startswith("sp0.9-") for s in sp.utt2spk.values())
    wav = sp.tables["wav.scp"]
    assert wav["sp0.9-spkA-r0"] == "gunzip -c a.wav.gz | sox -t wav - -t wav - speed 0.9 |"
    assert wav["sp0.9-spkA-r1"] == "sox -t wav /data/spkA-r1.wav -t wav - speed 0.9 |"
    assert sp.tables["segments"]["sp0.9-spkA-u1"] == "sp0.9-spkA-r0 5.556 8.333"
    assert float(sp.tables["utt2dur"]["sp0.9-spkA-u2"]) == pytest.approx(2.0 / 0.9, abs=1e-3)
    assert sp.tables["utt2uniq"]["sp0.9-spkA-u1"] == "spkA-u1"


def test_speed_perturbation_3way(good, tmp_path):
    out = str(tmp_path / "sp3")
    ops.perturb_speed_multi(DataDir.read(good), ["0.9", "1.0", "1.1"]).write(out)
    assert validate_data_dir(out) == ([], [])
    utts = DataDir.read(out).utts
    assert len(utts) == 30 and "spkA-u0" in utts and "sp1.1-spkA-u0" in utts
    uniq = DataDir.read(out).tables["utt2uniq"]
    assert uniq["spkA-u0"] == uniq["sp0.9-spkA-u0"] == "spkA-u0"
    with_prefix = ops.perturb_speed_multi(DataDir.read(good), ["0.9", "1.0", "1.1"], always_include_prefix=True)
    assert "sp1.0-spkA-u0" in with_prefix.utt2spk


@pytest.mark.skipif(shutil.which("sox") is None, reason="needs sox")
def test_speed_pipe_plays_faster(tmp_path):
    import kaldiio
    import soundfile

    wav = str(tmp_path / "a.wav")
    soundfile.write(wav, (np.sin(np.arange(16000) / 10) * 3000).astype(np.int16), 16000)
    entry = ops.speed_wav_entry(wav, "1.1")
    rate, data = kaldiio.load_mat(entry)
    assert rate == 16000 and abs(len(data) - 16000 / 1.1) < 50
