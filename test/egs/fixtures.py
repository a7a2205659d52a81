"""Miniature corpora in the exact download layouts, with the awkward cases planted.

Each builder returns what it planted (ids, speakers, texts, times) so that tests
compare the prepared data dirs against the truth rather than against themselves.
Audio is a short sine plus noise, distinct per file so a wrong path is caught.
"""
from __future__ import annotations

import os
from typing import Dict, List, Tuple

import numpy as np
import soundfile as sf

SR = 16000


def tone(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = 0.3 * np.sin(2 * np.pi * (200 + 10 * seed) * t) + 0.01 * rng.standard_normal(t.size)
    return (x * 32767).astype(np.int16)


# --- LibriSpeech -----------------------------------------------------------------

LIBRI_SPEAKERS = """\
; Some comments at the top, as in the real file
;ID  |SEX| SUBSET           |MINUTES| NAME
19   | F | train-clean-100  | 25.19 | Kara Shallenberg
60   | M | train-clean-100  | 20.18 | |CBW|Simon
103  | F | train-clean-360  | 25.03 | Karen Savage
1034 | M | train-other-500  | 25.03 | Kevin O'Coin
2277 | F | dev-clean        | 8.13  | zinniz
3752 | M | dev-other        | 10.54 | Mark Welch
"""

# set -> reader -> chapter -> number of utterances
LIBRI_LAYOUT: Dict[str, Dict[str, Dict[str, int]]] = {
    "train-clean-100": {"19": {"198": 2, "227": 3}, "60": {"121082": 2}},
    "train-clean-360": {"103": {"1240": 2}},
    "train-other-500": {"1034": {"121119": 2, "1": 1}},
    "dev-clean": {"2277": {"149896": 2}},
    "dev-other": {"3752": {"4943": 1}},
}


def make_librispeech(root: str) -> Dict[str, Dict[str, Tuple[str, str]]]:
    """Writes root/LibriSpeech/...; returns set -> utt -> (speaker, text)."""
    truth: Dict[str, Dict[str, Tuple[str, str]]] = {}
    seed = 0
    base = os.path.join(root, "LibriSpeech")
    os.makedirs(base, exist_ok=True)
    with open(os.path.join(base, "SPEAKERS.TXT"), "w") as f:
        f.write(LIBRI_SPEAKERS)
    for set_name, readers in LIBRI_LAYOUT.items():
        truth[set_name] = {}
        # Listing order on disk differs from C order (60 < 19 by directory creation).
        for reader in sorted(readers, reverse=True):
            for chapter, n in readers[reader].items():
                cdir = os.path.join(base, set_name, reader, chapter)
                os.makedirs(cdir, exist_ok=True)
                spk = f"{reader}-{chapter}"
                lines = []
                for i in reversed(range(n)):
                    utt = f"{spk}-{i:04d}"
                    text = f"WORD{seed} IT'S  CHAPTER {chapter} NUMBER {i}"
                    sf.write(os.path.join(cdir, utt + ".flac"), tone(0.2 + 0.05 * i, seed), SR)
                    lines.append(f"{utt} {text}\n")
                    truth[set_name][utt] = (spk, " ".join(text.split()))
                    seed += 1
                with open(os.path.join(cdir, f"{spk}.trans.txt"), "w") as f:
                    f.writelines(lines)
    return truth


# --- TED-LIUM release 2 ----------------------------------------------------------

# talk -> (seconds of audio, stm lines), in the file order (deliberately unsorted).
TED_TALKS: Dict[str, Dict[str, Tuple[float, List[str]]]] = {
    "train": {
        "AlBaker_2009": (8.0, [
            "AlBaker_2009 1 AlBaker_2009 3.50 5.17 <o,f0,male> {NOISE} so it 's here <sil> (AlBaker_2009-2)",
            "AlBaker_2009 1 AlBaker_2009 0.00 1.20 <o,f0,male> ignore_time_segment_in_scoring",
            "AlBaker_2009 1 AlBaker_2009 1.20 3.50 <o,f0,male> hello(2) world <sil> (AlBaker_2009-1)",
            "AlBaker_2009 1 AlBaker_2009 5.17 6.00 <o,f0,male> <sil> (AlBaker_2009-3)",
        ]),
        "BeaStone_2011X": (5.0, [
            "BeaStone_2011X 1 BeaStone_2011X 0.50 2.00 <o,f0,female> the(2) people 's {BREATH} choice",
            "BeaStone_2011X 1 BeaStone_2011X 2.00 4.35 <o,f0,female> read(3) this",
        ]),
        "Carl_2010": (4.0, [
            "Carl_2010 1 Carl_2010 4.20 4.90 <o,f0,male> after the audio ends",
            "Carl_2010 1 Carl_2010 0.10 3.90 <o,f0,male> one more talk",
        ]),
    },
    "dev": {
        "DanDennett_2002": (6.0, [
            "DanDennett_2002 1 DanDennett_2002 2.00 4.00 <F0_M> {COUGH} <sil> {SMACK}",
            "DanDennett_2002 1 DanDennett_2002 0.29 1.99 <F0_M> a dev sentence",
            "DanDennett_2002 1 DanDennett_2002 4.00 5.50 <F0_M> and another one",
        ]),
    },
    "test": {
        "EveLee_2012": (3.0, [
            "EveLee_2012 1 EveLee_2012 0.00 1.00 <o,f0,female> ignore_time_segment_in_scoring",
            "EveLee_2012 1 EveLee_2012 1.00 2.80 <o,f0,female> test words here",
            "EveLee_2012 1 EveLee_2012 2.80 2.95 <unk> word",
        ]),
    },
}

# What preparation must produce: set -> utt -> (talk, start, end, text)
TED_EXPECTED: Dict[str, Dict[str, Tuple[str, float, float, str]]] = {
    "train": {
        "AlBaker_2009-0000120-0000350": ("AlBaker_2009", 1.20, 3.50, "hello world"),
        "AlBaker_2009-0000350-0000517": ("AlBaker_2009", 3.50, 5.17, "<noise> so it's here"),
        "BeaStone_2011X-0000050-0000200": ("BeaStone_2011X", 0.50, 2.00, "the people's <noise> choice"),
        "BeaStone_2011X-0000200-0000435": ("BeaStone_2011X", 2.00, 4.35, "read this"),
        "Carl_2010-0000010-0000390": ("Carl_2010", 0.10, 3.90, "one more talk"),
    },
    "dev": {
        "DanDennett_2002-0000029-0000199": ("DanDennett_2002", 0.29, 1.99, "a dev sentence"),
        "DanDennett_2002-0000200-0000400": ("DanDennett_2002", 2.00, 4.00, "<noise> <noise>"),
        "DanDennett_2002-0000400-0000550": ("DanDennett_2002", 4.00, 5.50, "and another one"),
    },
    "test": {
        "EveLee_2012-0000100-0000280": ("EveLee_2012", 1.00, 2.80, "test words here"),
        "EveLee_2012-0000280-0000295": ("EveLee_2012", 2.80, 2.95, "<unk> word"),
    },
}


def make_tedlium2(root: str) -> None:
    """Writes root/TEDLIUM_release2/{train,dev,test}/{sph,stm}/."""
    seed = 0
    for set_name, talks in TED_TALKS.items():
        for talk, (seconds, lines) in talks.items():
            for sub in ("sph", "stm"):
                os.makedirs(os.path.join(root, "TEDLIUM_release2", set_name, sub), exist_ok=True)
            sf.write(os.path.join(root, "TEDLIUM_release2", set_name, "sph", talk + ".sph"),
                     tone(seconds, seed), SR, format="NIST", subtype="PCM_16")
            with open(os.path.join(root, "TEDLIUM_release2", set_name, "stm", talk + ".stm"), "w") as f:
                f.write("\n".join(lines) + "\n")
            seed += 1


# --- checking a prepared data dir ----------------------------------------------------

def read_lines(path: str) -> List[str]:
    with open(path, "rb") as f:
        return [line.decode("utf-8").rstrip("\n") for line in f]


def table(path: str) -> Dict[str, str]:
    out: Dict[str, str] = {}
    for line in read_lines(path):
        k, _, v = line.partition(" ")
        assert k not in out, f"{path}: duplicate key {k}"
        out[k] = v
    return out


def check_data_dir(d: str, text_name: str = "text") -> None:
    """The project's validate_data_dir (when present) plus its own checks: C-sorted
    unique keys in every table, and utt2spk / spk2utt / text / segments / wav.scp
    agreeing with each other; an unlabeled dir has text.unused and no text."""
    from bljust.data.datadir import validate_data_dir

    errors, warnings = validate_data_dir(d, no_text=text_name != "text")
    assert not errors, errors
    names = ["wav.scp", text_name, "utt2spk", "spk2utt"]
    if os.path.exists(os.path.join(d, "segments")):
        names.append("segments")
    for name in names + [n for n in ("spk2gender", "reco2file_and_channel") if os.path.exists(os.path.join(d, n))]:
        keys = [line.split(" ", 1)[0] for line in read_lines(os.path.join(d, name))]
        assert keys, f"{d}/{name} is empty"
        assert keys == sorted(keys, key=lambda k: k.encode()), f"{d}/{name} not sorted as LC_ALL=C"
        assert len(set(keys)) == len(keys), f"{d}/{name} has duplicate keys"
    utt2spk = table(os.path.join(d, "utt2spk"))
    spk2utt = {s: v.split() for s, v in table(os.path.join(d, "spk2utt")).items()}
    assert sorted(u for us in spk2utt.values() for u in us) == sorted(utt2spk)
    assert all(utt2spk[u] == s for s, us in spk2utt.items() for u in us)
    assert set(table(os.path.join(d, text_name))) == set(utt2spk)
    wav = table(os.path.join(d, "wav.scp"))
    if "segments" in names:
        segs = table(os.path.join(d, "segments"))
        assert set(segs) == set(utt2spk)
        assert {v.split()[0] for v in segs.values()} == set(wav)
    else:
        assert set(wav) == set(utt2spk)
    other = {"text": "text.unused", "text.unused": "text"}[text_name]
    assert not os.path.exists(os.path.join(d, other)), f"{d} has both text and text.unused"


def recipe_workdir(repo: str, recipe: str, work: str) -> None:
    """A scratch copy of a recipe's local/ with utils/ beside it, so data.sh runs
    as in the recipe folder without writing data/ into the repository."""
    import shutil

    shutil.copytree(os.path.join(repo, recipe, "local"), os.path.join(work, "local"))
    os.symlink(os.path.join(repo, "utils"), os.path.join(work, "utils"))


class serve_dir:
    """A local HTTP server over `directory` (a stand-in for openslr) as a context
    manager yielding its base URL."""

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def __enter__(self) -> str:
        import functools
        import http.server
        import threading

        handler = functools.partial(_QuietHandler, directory=self.directory)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _make_quiet_handler():
    import http.server

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep pytest output clean
            pass

    return Handler


_QuietHandler = _make_quiet_handler()


def tar_gz(src_root: str, members: List[str], out_path: str) -> str:
    """Packs src_root/<members> as out_path (like openslr's tarballs); returns its md5."""
    import hashlib
    import tarfile

    with tarfile.open(out_path, "w:gz") as t:
        for member in members:
            t.add(os.path.join(src_root, member), arcname=member)
    with open(out_path, "rb") as f:
        return hashlib.md5(f.read()).hexdigest()
