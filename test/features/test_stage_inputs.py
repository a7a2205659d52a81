"""Stage 3 on a stranger's data: failed sets, lost and truncated utterances, stale markers, 8 kHz, CMVN types."""
import os
import time

import kaldiio
import numpy as np
import pytest
import sentencepiece as spm
import soundfile as sf

from bljust.bin import compute_cmvn, extract_feats, stage_stamp, train_tokenizer
from bljust.features.extract import extract_job, read_feats_conf
from bljust.features.fbank import FbankOptions, default_options, mel_filter_warning
from bljust.text.coverage import text_file_coverage
from conftest import speechlike, write_wav


def extract(data, out, ratio="0.05", *extra):
    rc = extract_feats.main(["--data_dir", data, "--out_dir", f"{out}/data", "--name", "feats.1", *extra])
    assert rc == 0
    return extract_feats.main(["--merge", "--data_dir", data, "--out_dir", f"{out}/data", "--nj", "1",
                               "--dest", out, "--max_fail_ratio", ratio, *extra])


def test_a_set_whose_every_utterance_failed_fails_and_writes_nothing(make_data_dir, tmp_path, capfd):
    data = make_data_dir([("a", str(tmp_path / "gone1.wav")), ("b", str(tmp_path / "gone2.wav"))])
    out = str(tmp_path / "fb")
    assert extract(data, out, "1") == 1  # even when any share may fail, zero outputs is an error
    err = capfd.readouterr().err
    assert "no utterance has features" in err and "audio file not found" in err
    assert not os.path.exists(f"{out}/feats.scp")


def test_more_failures_than_max_fail_ratio_fail_with_the_reasons(make_data_dir, tmp_path, capfd):
    entries = [(f"u{i}", speechlike(0.3, i)) for i in range(8)] + [("x1", str(tmp_path / "nope.wav")),
                                                                    ("x2", "false |")]
    data = make_data_dir(entries)
    out = str(tmp_path / "fb")
    assert extract(data, out) == 1
    err = capfd.readouterr().err
    assert "2 of 10 utterances failed, more than --max_fail_ratio 0.05" in err
    assert "x1: audio file not found" in err and "x2: command 'false' failed" in err
    assert not os.path.exists(f"{out}/feats.scp")
    assert extract(data, out, "0.2") == 0  # a looser limit accepts the set, and lists the failures
    assert sorted(line.split()[0] for line in open(f"{out}/failed")) == ["x1", "x2"]


def test_utterances_in_text_or_utt2spk_but_not_in_wav_scp_are_counted(make_data_dir, tmp_path, capfd):
    data = make_data_dir([("s1-a", speechlike(0.3, 0)), ("s1-b", speechlike(0.3, 1))])
    with open(os.path.join(data, "text"), "w") as f:
        f.write("s1-a hi\ns1-b yo\ns1-c lost in text\n")
    with open(os.path.join(data, "utt2spk"), "w") as f:
        f.write("s1-a s1\ns1-b s1\ns1-d s1\n")
    out = str(tmp_path / "fb")
    assert extract(data, out, "1") == 0
    err = capfd.readouterr().err
    failed = dict(line.rstrip("\n").split(" ", 1) for line in open(f"{out}/failed"))
    assert failed == {"s1-c": "in text but not in wav.scp", "s1-d": "in utt2spk but not in wav.scp"}
    assert "2 utterance(s)" in err
    assert extract(data, out) == 1  # 2 of 4 lost is far over the default limit


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24"])
def test_a_truncated_wav_is_a_counted_skip_not_a_short_read(make_data_dir, tmp_path, subtype):
    good = speechlike(0.5, 0)
    path = str(tmp_path / "cut.wav")
    sf.write(path, good.astype(np.float32) / 32768, 16000, subtype=subtype)
    blob = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(blob[: len(blob) * 2 // 3])  # the header still promises every sample
    data = make_data_dir([("ok", speechlike(0.4, 1)), ("cut", path)])
    out = str(tmp_path / "fb")
    assert extract(data, out, "1") == 0
    failed = dict(line.rstrip("\n").split(" ", 1) for line in open(f"{out}/failed"))
    assert list(failed) == ["cut"] and "truncated WAV" in failed["cut"]


def test_a_restored_audio_file_reruns_the_job(make_data_dir, tmp_path):
    data = make_data_dir([("a", speechlike(0.4, 0)), ("b", speechlike(0.4, 1))])
    wav_b = os.path.join(data, "audio", "b.wav")
    saved = open(wav_b, "rb").read()
    os.unlink(wav_b)
    out = str(tmp_path / "fb")
    ark, scp = f"{out}/a.ark", f"{out}/a.scp"
    assert extract_job(data, ark, scp)["num_failed"] == 1
    with open(wav_b, "wb") as f:  # the user restores the file; wav.scp is unchanged
        f.write(saved)
    summary = extract_job(data, ark, scp)
    assert summary["num_failed"] == 0 and summary["num_utts"] == 2
    assert extract_job(data, ark, scp) == summary  # unchanged: skipped


def test_stage_stamp_notices_changed_tables_audio_and_options(make_data_dir, tmp_path, capsys):
    data = make_data_dir([("a", speechlike(0.3, 0))])
    marker = str(tmp_path / ".done")
    args = ["--files", f"{data}/wav.scp", f"{data}/text", "--audio_of", f"{data}/wav.scp", "--opt", "fs=16000"]
    assert stage_stamp.main(["check", marker, *args]) == 1
    assert stage_stamp.main(["write", marker, *args]) == 0
    assert stage_stamp.main(["check", marker, *args]) == 0
    assert stage_stamp.main(["check", marker, *args[:-1], "fs=8000"]) == 1
    assert "option fs: 16000 -> 8000" in capsys.readouterr().out
    wav = os.path.join(data, "audio", "a.wav")
    write_wav(wav, speechlike(0.35, 0))
    os.utime(wav, (time.time() + 5, time.time() + 5))
    assert stage_stamp.main(["check", marker, *args]) == 1
    assert "audio files changed" in capsys.readouterr().out
    assert stage_stamp.main(["write", marker, *args]) == 0
    with open(f"{data}/text", "w") as f:
        f.write("a hello\n")
    assert stage_stamp.main(["check", marker, *args]) == 1
    assert "text appeared" in capsys.readouterr().out


def test_8khz_defaults_and_the_degenerate_filter_warning(make_data_dir, tmp_path, capfd):
    assert mel_filter_warning(FbankOptions(sample_rate=16000)) is None  # the common setup stays quiet
    warning = mel_filter_warning(FbankOptions(sample_rate=8000, num_mel_bins=80))
    assert warning and warning.startswith("14 of 80 mel filters")
    assert mel_filter_warning(FbankOptions.from_dict(default_options(8000))) is None
    x = speechlike(0.5, 0, fs=8000)
    d = tmp_path / "d8"
    (d / "audio").mkdir(parents=True)
    write_wav(str(d / "audio/a.wav"), x, fs=8000)
    (d / "wav.scp").write_text(f"a {d}/audio/a.wav\n")
    out = str(tmp_path / "fb")
    assert extract(str(d), out, "0.05", "--fs", "8000") == 0
    assert open(f"{out}/feat_dim").read().strip() == "40"
    assert read_feats_conf(out)["fbank"]["high_freq"] == -200.0
    conf = tmp_path / "fbank80.yaml"
    conf.write_text("num_mel_bins: 80\n")
    capfd.readouterr()
    assert extract(str(d), str(tmp_path / "fb80"), "0.05", "--fs", "8000", "--fbank_conf", str(conf)) == 0
    assert "14 of 80 mel filters" in capfd.readouterr().err


def test_wrong_rate_message_names_the_options_that_exist(make_data_dir, tmp_path, capfd):
    data = make_data_dir([("a", speechlike(0.4, 0)), ("b", speechlike(0.4, 1))])
    out = str(tmp_path / "fb")
    assert extract(data, out, "1", "--fs", "8000") == 1
    err = capfd.readouterr().err
    assert "sample rate 16000 Hz, expected 8000 Hz (run asr.sh with --fs 16000, or with --resample true" in err
    assert extract(data, out, "1", "--fs", "8000", "--resample", "true") == 0


def _speaker_feats(tmp_path, cmvn_type):
    """Two loud speakers and one 3.5 log units quieter (amplitude x e^-1.75), features and CMVN per type."""
    d = tmp_path / f"data_{cmvn_type}"
    (d / "audio").mkdir(parents=True)
    wav, spk = [], []
    for s, gain in (("loud1", 1.0), ("loud2", 1.0), ("quiet", float(np.exp(-1.75)))):
        for i in range(3):
            utt = f"{s}-{i}"
            x = (speechlike(0.6, hash(utt) % 1000).astype(np.float64) * gain).astype(np.int16)
            write_wav(str(d / "audio" / f"{utt}.wav"), x)
            wav.append(f"{utt} {d}/audio/{utt}.wav\n")
            spk.append(f"{utt} {s}\n")
    (d / "wav.scp").write_text("".join(wav))
    (d / "utt2spk").write_text("".join(spk))
    out = tmp_path / f"fb_{cmvn_type}"
    assert extract(str(d), str(out), "0.05", "--cmvn_type", cmvn_type) == 0
    if cmvn_type != "global":
        os.rename(out / "feats.scp", out / "feats_raw.scp")
        assert compute_cmvn.main(["--cmvn_type", cmvn_type, "--feats_scp", str(out / "feats_raw.scp"),
                                  "--utt2spk", str(out / "utt2spk"), "--out", str(out / f"cmvn_{cmvn_type}.ark"),
                                  "--apply_ark", str(out / "data/feats_cmvn.ark"),
                                  "--apply_scp", str(out / "feats.scp")]) == 0
    assert read_feats_conf(str(out))["cmvn_type"] == cmvn_type
    feats = kaldiio.load_scp(str(out / "feats.scp"))
    return {s: np.concatenate([feats[f"{s}-{i}"] for i in range(3)]) for s in ("loud1", "loud2", "quiet")}


def test_speaker_cmvn_brings_a_quiet_speaker_to_the_training_distribution(tmp_path):
    raw = _speaker_feats(tmp_path, "global")
    gap = raw["loud1"].mean() - raw["quiet"].mean()
    assert 3.0 < gap < 4.0  # the quiet speaker really is ~3.5 log units lower
    for kind in ("speaker", "utterance"):
        norm = _speaker_feats(tmp_path, kind)
        for s in norm:
            assert abs(norm[s].mean()) < 0.05 and abs(norm[s].std() - 1) < 0.1, (kind, s)
        assert abs(norm["quiet"].mean(axis=0) - norm["loud1"].mean(axis=0)).max() < 0.3


def test_tokenizer_coverage_counts_words_and_characters_that_become_unk(tmp_path, capfd):
    train = tmp_path / "train_text"
    train.write_text("".join(f"u{i} the cat sat on a mat {i % 3}\n" for i in range(60)))
    dev = tmp_path / "dev" / "text"
    dev.parent.mkdir()
    dev.write_text("d1 the cât sat\nd2 a mät cat\nd3 the cat\n")
    tok = tmp_path / "tok"
    assert train_tokenizer.main(["--text", str(train), "--token_type", "char", "--out_dir", str(tok),
                                 "--report_texts", str(dev)]) == 0
    err = capfd.readouterr().err
    assert "2 of 8 words" in err and "'â' x1" in err and "'ä' x1" in err
    sp = spm.SentencePieceProcessor(model_file=str(tok / "bpe.model"))
    cov = text_file_coverage(sp, str(dev))
    assert dict(cov.oov_words) == {"cât": 1, "mät": 1} and dict(cov.oov_chars) == {"â": 1, "ä": 1}
