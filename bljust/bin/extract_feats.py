"""Kaldi-compatible fbank features for a data directory, as Kaldi ark/scp.

One job (what `${cmd} JOB=1:${nj}` runs) writes <out_dir>/<name>.{ark,scp} (+ .done,
.failed, .utt2num_frames, and .cmvn: the global CMVN stats of its matrices):
  python -m bljust.bin.extract_feats --data_dir data/train/split4utt/JOB \
      --out_dir dump/fbank/train/data --name feats.JOB
(or --ark A --scp S for explicit paths), or, without a split data dir, job J of N:
  python -m bljust.bin.extract_feats --data_dir data/train --out_dir dump/fbank/train/data --job J --nj N
With --compress true the ark holds Kaldi compressed matrices; with --feats_type raw no
ark is written (the audio is checked and its samples counted) and merge writes wav.scp
(+ segments) and utt2num_samples instead of feats.scp.
Then join the jobs into --dest (feats.scp, utt2num_frames, feat_dim, failed, feats_conf.yaml
and the text/utt2spk/spk2utt of the utterances with features), and sum the jobs' stats into
<out_dir>/feats.cmvn (the global stats of feats.scp, with no second pass over the features:
`compute_cmvn --stats` makes cmvn.ark of it). Every utterance of the data dir must have
features or a recorded reason, and a set with no features or more than --max_fail_ratio
failed is an error that lists the reasons:
  python -m bljust.bin.extract_feats --merge --data_dir data/train --out_dir dump/fbank/train/data \
      --nj 4 --dest dump/fbank/train
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from typing import List, Optional

import yaml

from bljust.features.audio import utterance_ids
from bljust.features.cmvn import CMVN_TYPES
from bljust.features.extract import (FEATS_CONF, JOB_STATS_SUM, FeatureError, extract_job, merge_jobs, split_ids,
                                     write_feats_conf)
from bljust.features.fbank import FbankOptions, default_options, mel_filter_warning
from bljust.utils.fileio import FormatError
from bljust.utils.lock import LockError, hold, hold_dir
from bljust.utils.log import setup_logging


def str2bool(s: str) -> bool:
    if s.lower() in ("true", "1", "yes"):
        return True
    if s.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got '{s}'")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", required=True, help="Kaldi data dir (wav.scp, optional segments)")
    p.add_argument("--ark", help="output ark of this job (with --scp)")
    p.add_argument("--scp", help="output scp of this job (with --ark)")
    p.add_argument("--out_dir", help="directory of the jobs' files <name>.{ark,scp}")
    p.add_argument("--name", help="file stem of this job's output in --out_dir (default feats.<job>)")
    p.add_argument("--job", type=int, help="1-based job index: take job's share of --data_dir (with --nj)")
    p.add_argument("--nj", type=int, help="number of jobs")
    p.add_argument("--merge", action="store_true", help="join the jobs' outputs feats.{1..nj}.scp of --out_dir")
    p.add_argument("--dest", help="with --merge: the feature dir to write (default --out_dir)")
    p.add_argument("--fbank_conf", help="YAML file of fbank options (see FbankOptions)")
    p.add_argument("--fs", type=int, default=16000, help="expected sample rate")
    p.add_argument("--resample", type=str2bool, default=False, help="resample other rates to --fs instead of failing")
    p.add_argument("--feats_type", choices=("fbank", "raw"), default="fbank",
                   help="fbank: dump features into an ark; raw: check the audio and count its samples, "
                        "the fbank is computed when training or decoding loads it")
    p.add_argument("--compress", type=str2bool, default=False,
                   help="write Kaldi compressed matrices (copy-feats --compress=true; about 4x smaller)")
    p.add_argument("--strict", type=str2bool, default=False, help="fail on the first bad utterance instead of skipping")
    p.add_argument("--max_fail_ratio", type=float, default=0.05,
                   help="with --merge: fail (and write nothing) when more of the set's utterances failed")
    p.add_argument("--cmvn_type", default="global", choices=CMVN_TYPES,
                   help="with --merge: the CMVN the recipe applies, recorded in <dest>/" + FEATS_CONF)
    p.add_argument("--num_threads", type=int, default=1, help="torch threads (jobs run in parallel: keep 1)")
    p.add_argument("--verbose", type=int, default=1)
    return p


def _opts(args) -> FbankOptions:
    conf = default_options(args.fs)
    if args.fbank_conf:
        with open(args.fbank_conf, encoding="utf-8") as f:
            conf = yaml.safe_load(f) or {}
        if not isinstance(conf, dict):
            raise ValueError(f"{args.fbank_conf}: expected a mapping of fbank options")
        conf.setdefault("sample_rate", args.fs)
        if conf["sample_rate"] != args.fs:
            raise ValueError(f"{args.fbank_conf}: sample_rate {conf['sample_rate']} differs from --fs {args.fs}")
    opts = FbankOptions.from_dict(conf)
    warning = mel_filter_warning(opts)
    if warning:
        logging.warning("%s", warning)
    return opts


def _job_scp(out_dir: str, job: int) -> str:
    return os.path.join(out_dir, f"feats.{job}.scp")


def main(argv: Optional[List[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        if args.merge:
            if not (args.out_dir and args.nj):
                raise ValueError("--merge needs --out_dir and --nj")
            dest = args.dest or args.out_dir
            opts = _opts(args)
            with hold_dir(dest, "merging features"):
                got = merge_jobs(args.data_dir, dest, [_job_scp(args.out_dir, j) for j in range(1, args.nj + 1)],
                                 max_fail_ratio=args.max_fail_ratio,
                                 cmvn_out=os.path.join(args.out_dir, JOB_STATS_SUM))
                # the record says what the jobs did (a raw folder's loader computes exactly this fbank),
                # whatever options this merge was given
                resample = args.resample
                if got.get("fbank") is not None:
                    if got["fbank"] != dataclasses.asdict(opts) or got["resample"] != args.resample:
                        logging.warning("the jobs of %s ran with other fbank options or --resample than this "
                                        "--merge was given: recording the jobs'", args.out_dir)
                    opts, resample = FbankOptions(**got["fbank"]), bool(got["resample"])
                write_feats_conf(dest, opts, resample, args.cmvn_type, got["feats_type"], got["compress"])
            return 0
        import torch  # only the jobs need it; the merge step starts without it

        torch.set_num_threads(args.num_threads)
        opts = _opts(args)
        only = None
        if args.job is not None or args.nj is not None:
            if not (args.job and args.nj and 1 <= args.job <= args.nj):
                raise ValueError(f"--job must be within 1..--nj, got --job {args.job} --nj {args.nj}")
            only = split_ids(utterance_ids(args.data_dir), args.job, args.nj)
        if args.ark or args.scp:
            if not (args.ark and args.scp):
                raise ValueError("--ark and --scp go together")
            ark, scp = args.ark, args.scp
        elif args.out_dir and (args.name or args.job):
            stem = os.path.join(args.out_dir, args.name or f"feats.{args.job}")
            ark, scp = stem + ".ark", stem + ".scp"
        else:
            raise ValueError("give --out_dir with --name (or --job/--nj), or --ark and --scp")
        for name in ("wav.scp",):
            if not os.path.isfile(os.path.join(args.data_dir, name)):
                raise ValueError(f"{args.data_dir} has no {name}")
        # one writer per job output (a rerun while an orphaned job still writes it stops here)
        with hold((scp[:-4] if scp.endswith(".scp") else scp) + ".lock", "feature extraction"):
            extract_job(args.data_dir, ark, scp, opts, args.fs, args.resample, args.strict, only,
                        compress=args.compress, feats_type=args.feats_type)
        return 0
    except (FeatureError, FormatError, ValueError, OSError, LockError) as e:
        logging.error("%s", e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
