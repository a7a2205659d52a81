"""Trains a SentencePiece tokenizer on the transcripts of a data dir; writes bpe.model and tokens.txt.

  python -m bljust.bin.train_tokenizer --text data/train/text --token_type bpe --bpemode unigram \
      --nbpe 300 --out_dir data/token_list/bpe_unigram300
  python -m bljust.bin.train_tokenizer --text data/train/text --token_type char --out_dir data/token_list/char
tokens.txt lists <blank>, <unk>, then the model's pieces. --report_texts logs, per text file,
the words and characters the model turns into <unk> (counts and examples). The same text and options give
the same model bytes; an output whose recorded inputs match is kept (skipped).
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import logging
import os
import sys
from typing import List, Optional

import sentencepiece as spm
from typeguard import typechecked

from bljust.text.coverage import report_coverage
from bljust.text.token_list import BLANK, UNK
from bljust.utils.fileio import FormatError, atomic_write, iter_table
from bljust.utils.log import setup_logging

log = logging.getLogger(__name__)


@typechecked
def train_tokenizer(text: str, out_dir: str, token_type: str = "bpe", bpemode: str = "unigram", nbpe: int = 300,
                    character_coverage: float = 1.0) -> List[str]:
    """Trains the model into out_dir; returns the token list (skips work that is already done)."""
    if token_type not in ("bpe", "char"):
        raise ValueError(f"--token_type must be bpe or char, got '{token_type}'")
    if bpemode not in ("unigram", "bpe"):
        raise ValueError(f"--bpemode must be unigram or bpe, got '{bpemode}'")
    model_type = "char" if token_type == "char" else bpemode
    lines = [v for _, v, _ in iter_table(text, allow_empty_value=True) if v]
    if not lines:
        raise ValueError(f"{text}: no transcripts to train on")
    conf = {"model_type": model_type, "nbpe": nbpe if model_type != "char" else None,
            "character_coverage": character_coverage,
            "text_sha1": hashlib.sha1("\n".join(lines).encode("utf-8")).hexdigest()}
    done_path = os.path.join(out_dir, "train_tokenizer.json")
    tokens_path = os.path.join(out_dir, "tokens.txt")
    if os.path.isfile(done_path) and os.path.isfile(tokens_path) and os.path.isfile(os.path.join(out_dir, "bpe.model")):
        with open(done_path, encoding="utf-8") as f:
            if json.load(f) == conf:
                log.info("%s is up to date; skipping", out_dir)
                with open(tokens_path, encoding="utf-8") as t:
                    return t.read().split("\n")[:-1]
    model = io.BytesIO()
    args = dict(sentence_iterator=iter(lines), model_writer=model,
                model_type=model_type, character_coverage=character_coverage,
                # Determinism: every sentence in file order, one thread, and no file paths in the model.
                input_sentence_size=0, shuffle_input_sentence=False, num_threads=1,
                # <unk> is the only special piece; <blank> is added in tokens.txt, and CTC needs no <s>/</s>.
                unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1,
                normalization_rule_name="identity", minloglevel=2)
    if model_type == "char":
        args.update(vocab_size=1, use_all_vocab=True, hard_vocab_limit=False)
    else:
        # A small corpus may not support nbpe pieces: take what it has rather than fail.
        args.update(vocab_size=nbpe, hard_vocab_limit=False)
    spm.SentencePieceTrainer.train(**args)
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size()) if i != sp.unk_id()]
    tokens = [BLANK, UNK] + pieces
    with contextlib.suppress(FileNotFoundError):
        os.unlink(done_path)
    with atomic_write(os.path.join(out_dir, "bpe.model"), "wb", encoding=None) as f:
        f.write(model.getvalue())
    with atomic_write(tokens_path) as f:
        f.writelines(t + "\n" for t in tokens)
    with atomic_write(done_path) as f:
        json.dump(conf, f, indent=1)
    if model_type != "char" and len(pieces) + 1 < nbpe:
        log.warning("the text supports only %d pieces, fewer than --nbpe %d", len(pieces) + 1, nbpe)
    log.info("wrote %d tokens (%s) to %s", len(tokens), model_type, tokens_path)
    return tokens


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--text", required=True, help="Kaldi `text` file (utt id, then the transcript)")
    p.add_argument("--out_dir", required=True, help="e.g. data/token_list/bpe_unigram300")
    p.add_argument("--token_type", default="bpe", choices=["bpe", "char"])
    p.add_argument("--bpemode", default="unigram", choices=["unigram", "bpe"])
    p.add_argument("--nbpe", type=int, default=300)
    p.add_argument("--character_coverage", type=float, default=1.0)
    p.add_argument("--report_texts", nargs="*", default=[],
                   help="text files whose coverage (words/characters that become <unk>) is logged")
    p.add_argument("--verbose", type=int, default=1)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        train_tokenizer(args.text, args.out_dir, args.token_type, args.bpemode, args.nbpe, args.character_coverage)
        if args.report_texts:
            sp = spm.SentencePieceProcessor(model_file=os.path.join(args.out_dir, "bpe.model"))
            report_coverage(sp, [(os.path.dirname(t) or t, t) for t in args.report_texts])
        return 0
    except (FormatError, ValueError, OSError, RuntimeError) as e:
        logging.error("%s", e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
