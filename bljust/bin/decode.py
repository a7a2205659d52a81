"""CTC decoding of a Kaldi data directory (feats.scp), and merging of split jobs.

    python -m bljust.bin.decode --model_file exp/x/model.pth --data_dir data/test \\
        --token_dir data/token_list/bpe300 --output_dir exp/x/decode_test \\
        [--decode_method greedy|beam --beam_size 10 --nbest 1 --batch_size 16 --ngpu 0]
    python -m bljust.bin.decode merge --data_dir data/test --output_dir exp/x/decode_test \\
        exp/x/decode_test/logdir/output.*     (or: --merge --nj N, parts from logdir/output.{1..N})

Writes <output_dir>/{text,token,score} (utt -> words / tokens / log-prob).
The token list, feature dimension and CMVN (--cmvn: the training statistics, optional)
must be the model's: another token list is an error, not a wrong transcript. One
decoding writes an output dir at a time (<output_dir>/.lock). Errors are one line;
--debug adds the traceback.
"""
from __future__ import annotations

import argparse
import os
import sys

from typeguard import typechecked

from bljust.decode.runner import decode_data_dir, merge_outputs
from bljust.utils import cli
from bljust.utils.lock import hold_dir
from bljust.utils.log import setup_logging


@typechecked
def run_decode(model_file: str, data_dir: str, token_dir: str, output_dir: str, config: str | None,
               decode_method: str, beam_size: int, batch_size: int, nbest: int, ngpu: int,
               utt_list: str | None, allow_missing: bool, token_topk: int | None, cmvn: str | None = None) -> int:
    if decode_method not in ("greedy", "beam"):
        raise ValueError(f"--decode_method {decode_method}: greedy or beam")
    if min(beam_size, batch_size, nbest) < 1 or ngpu < 0:
        raise ValueError("--beam_size, --batch_size and --nbest must be >= 1, --ngpu >= 0")
    if nbest > 1 and decode_method == "greedy":
        raise ValueError("--nbest > 1 needs --decode_method beam")
    if nbest > beam_size:
        raise ValueError(f"--nbest {nbest} is larger than --beam_size {beam_size}")
    if ngpu > 0:
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"--ngpu {ngpu}, but torch sees no CUDA device on this machine: use --ngpu 0")
    device = "cuda" if ngpu > 0 else "cpu"
    with hold_dir(output_dir, "decoding"):
        return decode_data_dir(model_file, data_dir, token_dir, output_dir, config, decode_method, beam_size,
                               batch_size, nbest, device, utt_list, allow_missing, token_topk, cmvn)


def _merge_main(argv) -> int:
    p = argparse.ArgumentParser(prog="bljust.bin.decode merge",
                                description="Concatenate split decoding outputs (C-sorted), checking completeness.")
    p.add_argument("parts", nargs="*", help="output dirs of the split jobs (default with --nj: "
                   "<output_dir>/logdir/output.{1..nj})")
    p.add_argument("--output_dir", required=True)
    p.add_argument("--nj", type=int, default=None, help="number of split jobs, when no parts are listed")
    p.add_argument("--data_dir", default=None, help="the whole set: every utterance must be decoded")
    p.add_argument("--allow_missing", action="store_true", help="utterances without features may be absent")
    p.add_argument("--verbose", type=int, default=1)
    p.add_argument("--debug", action="store_true", help="print the traceback of an error")
    a = p.parse_args(argv)
    setup_logging(a.verbose)
    parts = a.parts or [os.path.join(a.output_dir, "logdir", f"output.{j}") for j in range(1, (a.nj or 0) + 1)]
    if not parts:
        p.error("list the part directories or give --nj")
    def body() -> None:
        with hold_dir(a.output_dir, "merging decoding outputs"):
            merge_outputs(parts, a.output_dir, a.data_dir, a.allow_missing)

    return cli.run(body, a.debug)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "merge":
        return _merge_main(argv[1:])
    if "--merge" in argv:  # the flag form of the subcommand
        return _merge_main([x for x in argv if x != "--merge"])
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model_file", required=True)
    p.add_argument("--config", default=None, help="default: config.yaml beside the model")
    p.add_argument("--data_dir", required=True, help="Kaldi data dir with feats.scp (text optional)")
    p.add_argument("--token_dir", required=True, help="tokens.txt + bpe.model")
    p.add_argument("--output_dir", required=True)
    p.add_argument("--decode_method", default="greedy", choices=["greedy", "beam"])
    p.add_argument("--beam_size", type=int, default=10)
    p.add_argument("--token_topk", type=int, default=None,
                   help="beam: tokens tried per frame (default beam_size; 0 = all)")
    p.add_argument("--nbest", type=int, default=1)
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--ngpu", type=int, default=0)
    p.add_argument("--utt_list", default=None, help="decode these utterances (default: text, else feats.scp)")
    p.add_argument("--allow_missing", action="store_true",
                   help="skip (and count) utterances that have no features instead of failing")
    p.add_argument("--cmvn", default=None, help="the CMVN stats the model was trained with (checked against its "
                   "record; the model holds the statistics themselves)")
    p.add_argument("--verbose", type=int, default=1)
    p.add_argument("--debug", action="store_true", help="print the traceback of an error")
    a = p.parse_args(argv)
    setup_logging(a.verbose)
    def body() -> None:
        run_decode(a.model_file, a.data_dir, a.token_dir, a.output_dir, a.config, a.decode_method, a.beam_size,
                   a.batch_size, a.nbest, a.ngpu, a.utt_list, a.allow_missing, a.token_topk, a.cmvn)

    return cli.run(body, a.debug)


if __name__ == "__main__":
    sys.exit(main())
