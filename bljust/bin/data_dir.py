"""Kaldi data-directory tools: python -m bljust.bin.data_dir <command> ...

Commands mirror Kaldi's utils/ scripts (which wrap them): validate, fix, split,
subset, combine, copy, perturb-speed, get-utt2dur, utt2spk-to-spk2utt, spk2utt-to-utt2spk.
Options take Kaldi's dashed spelling and ESPnet's underscored one alike.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import List, Optional

from typeguard import typechecked

from bljust.data import datadir_ops as ops
from bljust.data.datadir import DataDir, fix_data_dir, validate_data_dir
from bljust.utils.fileio import FormatError, read_table, write_table
from bljust.utils.log import setup_logging

log = logging.getLogger("bljust.data_dir")
MAX_SHOWN = 20


def _opt(p: argparse.ArgumentParser, name: str, **kw) -> None:
    """Adds --a-b and --a_b as one option (Kaldi's parse_options.sh accepts both)."""
    names = [name] + ([name.replace("-", "_").replace("__", "--", 1)] if "-" in name[2:] else [])
    p.add_argument(*names, **kw)


@typechecked
def validate(path: str, no_text: bool = False, no_feats: bool = False, no_wav: bool = False) -> int:
    errors, warnings = validate_data_dir(path, no_text=no_text, no_feats=no_feats, no_wav=no_wav)
    for w in warnings:
        log.warning("%s", w)
    for e in errors[:MAX_SHOWN]:
        log.error("%s", e)
    if len(errors) > MAX_SHOWN:
        log.error("... and %d more problems", len(errors) - MAX_SHOWN)
    if errors:
        log.error("%s is not a valid data directory; utils/fix_data_dir.sh repairs most of these problems", path)
        return 1
    log.info("Successfully validated data-directory %s", path)
    return 0


def _keep_dest_feats(out: DataDir, dest: str) -> None:
    """Features already in dest win over the source's; utterances without them are kept
    (validate then names them) rather than silently dropped."""
    for name in ("feats.scp", "utt2num_frames"):
        p = os.path.join(dest, name)
        if os.path.isfile(p):
            out.tables[name] = read_table(p)
            extra = set(out.tables[name]) - set(out.utt2spk)
            if extra:
                log.warning("%s: %d entries for utterances not in the source; dropped", p, len(extra))
                out.tables[name] = {k: v for k, v in out.tables[name].items() if k in out.utt2spk}


def _convert_utt2spk(stdin, stdout, reverse: bool) -> None:
    """Streams Kaldi's conversions; speakers keep the order of first appearance."""
    if reverse:
        for line in stdin:
            f = line.split()
            for u in f[1:]:
                stdout.write(f"{u} {f[0]}\n")
        return
    spk2utt: dict = {}
    for line in stdin:
        f = line.split()
        if len(f) != 2:
            raise ValueError(f"utt2spk line must be 'utt spk': {line.rstrip()!r}")
        spk2utt.setdefault(f[1], []).append(f[0])
    for s, us in spk2utt.items():
        stdout.write(f"{s} {' '.join(us)}\n")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bljust.bin.data_dir", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--verbose", type=int, default=1)
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("validate", help="check a data dir as Kaldi's validate_data_dir.sh does")
    for o in ("--no-text", "--no-feats", "--no-wav"):
        _opt(s, o, action="store_true")
    _opt(s, "--non-print", action="store_true", help="accepted for Kaldi compatibility; ignored")
    s.add_argument("data")

    s = sub.add_parser("fix", help="keep utterances every file agrees on; re-sort; backup in .backup/")
    s.add_argument("data")

    s = sub.add_parser("split", help="write <data>/split<N>[utt]/{1..N}")
    _opt(s, "--per-utt", action="store_true", help="split by utterance (speakers may straddle parts)")
    s.add_argument("data")
    s.add_argument("num", type=int)

    s = sub.add_parser("subset", help="a subset of utterances or speakers")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--first", type=int, metavar="N")
    g.add_argument("--last", type=int, metavar="N")
    g.add_argument("--shortest", type=int, metavar="N")
    g.add_argument("--num", type=int, metavar="N", help="N utterances spread evenly over the list")
    _opt(g, "--utt-list", metavar="FILE")
    _opt(g, "--spk-list", metavar="FILE")
    s.add_argument("src")
    s.add_argument("dest")

    s = sub.add_parser("combine", help="several data dirs into one")
    _opt(s, "--skip-fix", action="store_true", help="accepted for Kaldi compatibility; ignored")
    s.add_argument("dest")
    s.add_argument("srcs", nargs="+")

    s = sub.add_parser("copy", help="copy with renamed utterance/speaker ids")
    for o in ("--utt-prefix", "--utt-suffix", "--spk-prefix", "--spk-suffix"):
        _opt(s, o, default="")
    _opt(s, "--validate-opts", default="", help="accepted for Kaldi compatibility; ignored")
    _opt(s, "--keep-feats", action="store_true",
         help="keep feats.scp/utt2num_frames already in dest (written there by feature extraction)")
    s.add_argument("src")
    s.add_argument("dest")

    s = sub.add_parser("perturb-speed", help="speed-perturbed copy (several factors: combined)")
    s.add_argument("--factors", required=True, help="comma-separated, e.g. 0.9 or 0.9,1.0,1.1")
    _opt(s, "--always-include-prefix", action="store_true",
         help="give the 1.0 copy the sp1.0- prefix too (default: it keeps the original ids)")
    s.add_argument("src")
    s.add_argument("dest")

    s = sub.add_parser("get-utt2dur", help="write <data>/utt2dur from segments or the audio")
    _opt(s, "--nj", type=int, default=1, help="accepted for Kaldi compatibility; ignored")
    s.add_argument("data")

    sub.add_parser("utt2spk-to-spk2utt", help="stdin utt2spk -> stdout spk2utt")
    sub.add_parser("spk2utt-to-utt2spk", help="stdin spk2utt -> stdout utt2spk")
    return p


def _run(a: argparse.Namespace) -> int:
    if a.cmd == "validate":
        return validate(a.data, a.no_text, a.no_feats, a.no_wav)
    if a.cmd == "fix":
        fix_data_dir(a.data)
        return validate(a.data, no_text=not os.path.isfile(os.path.join(a.data, "text")),
                        no_wav=not os.path.isfile(os.path.join(a.data, "wav.scp")))
    if a.cmd == "split":
        ops.split_to_disk(a.data, a.num, a.per_utt)
        return 0
    if a.cmd == "get-utt2dur":
        if os.path.isfile(os.path.join(a.data, "utt2dur")):
            log.info("%s/utt2dur exists", a.data)
            return 0
        dd = DataDir.read(a.data)
        write_table(os.path.join(a.data, "utt2dur"), ops.compute_utt2dur(dd))
        log.info("wrote %s/utt2dur for %d utterances", a.data, len(dd.utt2spk))
        return 0
    if a.cmd in ("utt2spk-to-spk2utt", "spk2utt-to-utt2spk"):
        _convert_utt2spk(sys.stdin, sys.stdout, reverse=a.cmd.startswith("spk"))
        return 0
    if a.cmd == "combine":
        if os.path.abspath(a.dest) in map(os.path.abspath, a.srcs):
            raise ValueError(f"destination {a.dest} is also a source")
        out = ops.combine_data_dirs([DataDir.read(s) for s in a.srcs], a.srcs)
    elif a.cmd == "subset":
        src = DataDir.read(a.src)
        mode = next((m for m in ("first", "last", "shortest", "num") if getattr(a, m) is not None), None)
        num = getattr(a, mode) if mode else None
        out = ops.subset_data_dir(src, num, mode="even" if mode == "num" else (mode or "even"),
                                  utt_list=a.utt_list, spk_list=a.spk_list)
    elif a.cmd == "copy":
        out = ops.copy_data_dir(DataDir.read(a.src), a.utt_prefix, a.utt_suffix, a.spk_prefix, a.spk_suffix)
        if a.keep_feats:
            _keep_dest_feats(out, a.dest)
    elif a.cmd == "perturb-speed":
        src = DataDir.read(a.src)
        factors = [f for f in a.factors.split(",") if f]
        if len(factors) == 1:
            out = ops.perturb_speed(src, factors[0])
        else:
            out = ops.perturb_speed_multi(src, factors, a.always_include_prefix)
    else:  # pragma: no cover - argparse rejects unknown commands
        raise AssertionError(a.cmd)
    if getattr(a, "src", None) and os.path.abspath(a.src) == os.path.abspath(a.dest):
        raise ValueError(f"destination {a.dest} is the source directory")
    out.write(a.dest)
    log.info("wrote %s: %d utterances, %d speakers", a.dest, len(out.utt2spk), len(out.spk2utt))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    a = _parser().parse_args(argv)
    setup_logging(a.verbose)
    try:
        return _run(a)
    except (FormatError, ValueError, FileNotFoundError) as e:
        log.error("%s", e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
