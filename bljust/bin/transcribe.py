"""Transcribe audio files with a trained or packed bljust model.

    python -m bljust.bin.transcribe --model exp/asr_x [--model packed/x.zip] a.wav b.flac c.sph ...
    python -m bljust.bin.transcribe --model x.zip --wav_scp data/test/wav.scp --output hyp/text

Prints `<file or key> <text>` per input (with --nbest N: `<key> <rank> <score> <text>`), and
with --output writes a Kaldi text file (utt -> words). Any sample rate and channel count is
converted the way the model was trained. Long files are decoded in overlapping chunks.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import List, Optional, Tuple

from typeguard import typechecked

from bljust.utils.fileio import FormatError, iter_table, write_table
from bljust.utils.log import setup_logging


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bljust.bin.transcribe", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("audio", nargs="*", help="audio files (wav, flac, sph, ... anything libsndfile reads)")
    p.add_argument("--model", required=True, help="experiment folder, packed .zip, or unpacked packed folder")
    p.add_argument("--wav_scp", default=None, help="Kaldi wav.scp (paths or `cmd |` pipes) to transcribe too")
    p.add_argument("--output", default=None, help="write a Kaldi text file (key -> words)")
    p.add_argument("--decode_method", choices=("greedy", "beam"), default="greedy")
    p.add_argument("--beam_size", type=int, default=10)
    p.add_argument("--nbest", type=int, default=1)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--chunk_s", type=float, default=30.0, help="longer audio is decoded in chunks of this length")
    p.add_argument("--overlap_s", type=float, default=4.0, help="overlap between chunks (half is context per side)")
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--token_dir", default=None, help="experiment folders: token list (default: config's token_dir)")
    p.add_argument("--fbank_conf", default=None, help="experiment folders trained before the feature setup was "
                   "recorded: their fbank YAML (default: the defaults)")
    p.add_argument("--verbose", type=int, default=1)
    return p


@typechecked
def _inputs(files: List[str], wav_scp: Optional[str]) -> List[Tuple[str, str]]:
    items = [(f, f) for f in files]
    if wav_scp:
        items += [(k, v) for k, v, _ in iter_table(wav_scp)]
    return items


def main(argv: Optional[List[str]] = None) -> int:
    a = get_parser().parse_args(argv)
    setup_logging(a.verbose)
    from bljust.features.audio import AudioError
    from bljust.inference import ModelLoadError, Speech2Text, load_audio

    try:
        items = _inputs(a.audio, a.wav_scp)
        if not items:
            raise ValueError("nothing to transcribe: give audio files or --wav_scp")
        asr = Speech2Text.from_pretrained(a.model, device=a.device, token_dir=a.token_dir, fbank_conf=a.fbank_conf,
                                          decode_method=a.decode_method, beam_size=a.beam_size, nbest=a.nbest,
                                          chunk_s=a.chunk_s, overlap_s=a.overlap_s, batch_size=a.batch_size)
        texts = {}
        for key, spec in items:  # one at a time: a long file's chunks already fill a batch
            try:
                x, rate = load_audio(spec)
                wave = asr.prepare(x, rate, key, int16_scale=True)
                nbest = asr.transcribe([wave], [key])[0]
            except (AudioError, ValueError) as e:
                msg = str(e)
                raise ValueError(msg if key in msg or spec in msg else f"{key}: {msg}") from None
            texts[key] = nbest[0][0]
            if a.nbest > 1:
                for r, (text, score) in enumerate(nbest, 1):
                    print(f"{key} {r} {score:.4f} {text}".rstrip(), flush=True)
            else:
                print(f"{key} {nbest[0][0]}".rstrip(), flush=True)
        if a.output:
            write_table(a.output, texts)
    except (ModelLoadError, FileNotFoundError, FormatError, ValueError, OSError) as e:
        logging.error("%s", " ".join(str(e).split()))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
