"""The feature stage: one job turns a data directory into an ark/scp pair; merge joins the jobs.

Three kinds of output (`feats_type`, ESPnet2's word for it):
  fbank             float32 fbank matrices in an ark (4 bytes per value);
  fbank, compress   Kaldi's compressed matrices (`copy-feats --compress=true`: about 1 byte
                    per value, read back by kaldiio and Kaldi alike);
  raw               no ark: every utterance is read once to check it and count its samples,
                    and the merged folder holds wav.scp (+ segments) and utt2num_samples; the
                    fbank is computed when the audio is loaded (see bljust/data/dataset.py).

A job writes `<ark>.tmp` and renames it when complete, then writes its scp, its list
of failed utterances, the global CMVN statistics of the matrices it wrote (`<stem>.cmvn`,
what Kaldi's compute-cmvn-stats gives for the job's scp) and, last, a done-marker that
records a hash of its inputs and options. A re-run skips a job whose marker matches and
redoes any other, so a job killed half-way never leaves an ark/scp that merge would trust.
Merge sums the jobs' statistics into `feats.cmvn` beside them (Kaldi's sum-matrices), so
that global CMVN needs no second pass over the features.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import logging
import os
import struct
import time
from typing import Dict, List, Optional, Set, Tuple

import humanfriendly
import kaldiio.matio
import numpy as np
from typeguard import typechecked

from bljust.features.audio import iter_utterances, utterance_ids
from bljust.features.cmvn import accumulate, read_stats, write_global
from bljust.features.fbank import Fbank, FbankOptions, num_frames
from bljust.utils.fileio import atomic_write, iter_table, write_table
from bljust.utils.model_info import FEATS_CONF, feats_conf
from bljust.utils.stamp import audio_stat_sha1

log = logging.getLogger(__name__)

# Utterances are sent to the filterbank in batches of about this much audio.
BATCH_SECONDS = 30.0
FEATS_TYPES = ("fbank", "raw")
# Kaldi's copy-feats --compress=true default, --compression-method=1 (kAutomaticMethod):
# per-column 8-bit quantisation around the column's percentiles (kSpeechFeature) for
# matrices of more than 8 rows, 16-bit for the rest.
KALDI_AUTOMATIC_COMPRESSION = 1
# The jobs' CMVN stats summed by merge, beside the jobs' files (feats.J.cmvn -> feats.cmvn).
JOB_STATS_SUM = "feats.cmvn"


class FeatureError(RuntimeError):
    """An utterance failed under --strict, or merge found missing work."""


def job_paths(scp: str) -> Dict[str, str]:
    """Side files of a job, named after its scp: .done, .failed, .utt2num_frames, .cmvn (its stats)."""
    stem = scp[:-4] if scp.endswith(".scp") else scp
    return {"done": stem + ".done", "failed": stem + ".failed", "utt2num_frames": stem + ".utt2num_frames",
            "utt2num_samples": stem + ".utt2num_samples", "cmvn": stem + ".cmvn"}


def _fingerprint(data_dir: str, opts: FbankOptions, fs: int, allow_resample: bool, only: Optional[Set[str]],
                 kind: str) -> str:
    h = hashlib.sha1()
    for name in ("wav.scp", "segments"):
        p = os.path.join(data_dir, name)
        if os.path.isfile(p):
            with open(p, "rb") as f:
                h.update(name.encode() + b"\0" + f.read())
    wav_scp = os.path.join(data_dir, "wav.scp")
    if os.path.isfile(wav_scp):  # a restored or re-recorded audio file changes its size or mtime
        h.update(audio_stat_sha1(wav_scp).encode())
    h.update(json.dumps([dataclasses.asdict(opts), fs, allow_resample, sorted(only or []), kind]).encode())
    return h.hexdigest()


class _ArkWriter:
    """Kaldi binary float matrices; the scp points at the final ark name while the data goes to a temp file."""

    def __init__(self, ark: str, compress: bool = False) -> None:
        self.ark = ark
        self.compress = compress
        self.tmp = ark + ".tmp"
        self.f = open(self.tmp, "wb")
        self.scp: List[Tuple[str, str]] = []

    def write(self, key: str, mat: np.ndarray) -> np.ndarray:
        """Appends `mat` under `key`; returns the matrix as a reader of the ark will get it."""
        head = key.encode("utf-8") + b" "
        offset = self.f.tell() + len(head)
        self.scp.append((key, f"{self.ark}:{offset}"))
        if self.compress:
            buf = io.BytesIO()
            kaldiio.matio.write_array(buf, np.asarray(mat, dtype=np.float32), "<", KALDI_AUTOMATIC_COMPRESSION)
            self.f.write(head + buf.getvalue())
            buf.seek(0)  # decompressed exactly as kaldiio reads it back
            return kaldiio.matio.read_matrix_or_vector(buf)
        rows, cols = mat.shape
        mat = np.ascontiguousarray(mat, dtype="<f4")
        self.f.write(head + b"\0BFM \x04" + struct.pack("<i", rows) + b"\x04" + struct.pack("<i", cols))
        self.f.write(mat.data)
        return mat

    def commit(self) -> None:
        # No fsync: the rename alone makes a killed job harmless, and forcing gigabytes of
        # features to disk would stall the job for what only matters on a power cut.
        self.f.close()
        os.replace(self.tmp, self.ark)

    def abort(self) -> None:
        self.f.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)


@typechecked
def extract_job(data_dir: str, ark: str, scp: str, opts: Optional[FbankOptions] = None, fs: int = 16000,
                allow_resample: bool = False, strict: bool = False, only: Optional[Set[str]] = None,
                compress: bool = False, feats_type: str = "fbank") -> Dict:
    """Computes fbank for every utterance of `data_dir` (or those in `only`) into ark/scp.

    Returns a summary dict (also stored in the done-marker). Utterances that cannot be
    read are skipped and listed with their reason in the job's .failed file, or raise
    FeatureError when `strict`. `compress` writes Kaldi compressed matrices; feats_type
    "raw" writes no ark and no scp, only the sample and frame counts of the readable
    utterances (the fbank is computed at training time from the audio). A fbank job also
    writes the global CMVN stats of its matrices, as stored (decompressed), to its .cmvn
    file: with one job (and a sorted data dir) exactly the stats a pass over its scp gives.
    """
    opts = opts or FbankOptions(sample_rate=fs)
    if opts.sample_rate != fs:
        raise ValueError(f"fbank sample_rate {opts.sample_rate} differs from fs {fs}")
    if feats_type not in FEATS_TYPES:
        raise ValueError(f"feats_type must be one of {FEATS_TYPES}, got '{feats_type}'")
    if compress and feats_type == "raw":
        raise ValueError("--compress applies to dumped fbank, not to feats_type raw")
    raw = feats_type == "raw"
    kind = "raw" if raw else ("fbank_compressed" if compress else "fbank")
    side = job_paths(scp)
    fp = _fingerprint(data_dir, opts, fs, allow_resample, only, kind)
    if os.path.isfile(side["done"]) and (raw or (os.path.isfile(ark) and os.path.isfile(scp))):
        with open(side["done"], encoding="utf-8") as f:
            done = json.load(f)
        if done.get("fingerprint") == fp and not (done.get("cmvn_stats") and not os.path.isfile(side["cmvn"])):
            log.info("%s: already done (%d utterances, %d failed); skipping", scp, done["num_utts"],
                     done["num_failed"])
            return done
    for name in ("done", "cmvn"):  # from here on this job is not done, whatever happens
        with contextlib.suppress(FileNotFoundError):
            os.unlink(side[name])
    os.makedirs(os.path.dirname(os.path.abspath(ark)), exist_ok=True)
    fbank = Fbank(opts)
    writer = None if raw else _ArkWriter(ark, compress)
    failed: List[Tuple[str, str]] = []
    frames: Dict[str, int] = {}
    samples: Dict[str, int] = {}
    stats: Optional[np.ndarray] = None
    batch: List[Tuple[str, np.ndarray]] = []
    batch_samples = 0
    audio_s = 0.0
    t0 = last_log = time.perf_counter()

    def flush() -> None:
        nonlocal batch, batch_samples, last_log, stats
        feats = fbank.compute_many([w for _, w in batch], [k for k, _ in batch])
        for (key, _), mat in zip(batch, feats):
            stats = accumulate(stats, writer.write(key, mat))
            frames[key] = mat.shape[0]
        batch, batch_samples = [], 0
        if time.perf_counter() - last_log > 60:
            last_log = time.perf_counter()
            log.info("%d utterances done (%s of audio), %d skipped", len(frames),
                     humanfriendly.format_timespan(audio_s), len(failed))

    try:
        for utt, wave, reason in iter_utterances(data_dir, fs, allow_resample, only):
            if wave is not None and num_frames(len(wave), opts) == 0:
                wave, reason = None, f"too short for one frame ({len(wave)} samples)"
            if wave is None:
                reason = " ".join(reason.split())  # one line per utterance in the .failed table
                if strict:
                    raise FeatureError(f"utterance '{utt}': {reason}")
                log.warning("skipping utterance '%s': %s", utt, reason)
                failed.append((utt, reason))
                continue
            audio_s += len(wave) / fs
            if raw:  # checked readable; its frames are what the loader's fbank will give
                samples[utt], frames[utt] = len(wave), num_frames(len(wave), opts)
                continue
            batch.append((utt, wave))
            batch_samples += len(wave)
            if batch_samples >= BATCH_SECONDS * fs:
                flush()
        if batch:
            flush()
        if writer is not None:
            writer.commit()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if raw:
        write_table(side["utt2num_samples"], {k: str(v) for k, v in samples.items()})
    else:
        write_table(scp, writer.scp, sort=True)
        if stats is not None:
            write_global(side["cmvn"], stats)
    write_table(side["utt2num_frames"], {k: str(v) for k, v in frames.items()})
    write_table(side["failed"], failed)
    elapsed = time.perf_counter() - t0
    summary = {"fingerprint": fp, "num_utts": len(frames), "num_failed": len(failed), "feat_dim": opts.feat_dim,
               "audio_seconds": round(audio_s, 3), "feats_type": feats_type, "compress": compress,
               "fs": fs, "resample": allow_resample, "fbank": dataclasses.asdict(opts),
               "cmvn_stats": stats is not None}
    with atomic_write(side["done"]) as f:
        json.dump(summary, f)
    log.info("%s: %d utterances (%s of audio) in %s, %.0fx real time; %d skipped (listed in %s)",
             side["utt2num_samples"] if raw else scp, len(frames),
             humanfriendly.format_timespan(audio_s), humanfriendly.format_timespan(elapsed),
             audio_s / max(elapsed, 1e-9), len(failed), side["failed"])
    return summary


# The feature setup of a dump folder, beside its feats.scp and CMVN stats: what a model
# trained on it must be fed at decoding time.


def write_feats_conf(out_dir: str, opts: FbankOptions, resample: bool, cmvn_type: str,
                     feats_type: str = "fbank", compress: bool = False) -> Dict:
    """Writes <out_dir>/feats_conf.yaml: fbank options, sample rate, resampling, the CMVN type,
    and how the features are stored (feats_type fbank, compress or not; or raw: the loader
    computes this fbank from the folder's wav.scp)."""
    import yaml

    if feats_type == "raw" and cmvn_type != "global":
        raise ValueError(f"--cmvn_type {cmvn_type} is applied to dumped features: raw input takes global CMVN")
    conf = {"feature": "fbank", "fs": opts.sample_rate, "resample": resample, "feat_dim": opts.feat_dim,
            "cmvn_type": cmvn_type, "fbank": dataclasses.asdict(opts), "feats_type": feats_type,
            "compress": bool(compress)}
    if cmvn_type != "global":
        conf["cmvn_stats"] = f"cmvn_{cmvn_type}.ark"
    with atomic_write(os.path.join(out_dir, FEATS_CONF)) as f:
        yaml.safe_dump(conf, f, sort_keys=False)
    return conf


def read_feats_conf(feats_dir: str) -> Optional[Dict]:
    """The feats_conf.yaml of a dump folder, or None where there is none (older dumps)."""
    return feats_conf(feats_dir)


def split_ids(ids: List[str], job: int, nj: int) -> Set[str]:
    """The contiguous share of `ids` (in C order) that job `job` of `nj` (1-based) takes."""
    ids = sorted(set(ids), key=lambda s: s.encode("utf-8"))
    return set(ids[(job - 1) * len(ids) // nj: job * len(ids) // nj])


@typechecked
def merge_jobs(data_dir: str, out_dir: str, scps: List[str], copy_tables: bool = True,
               max_fail_ratio: float = 1.0, cmvn_out: Optional[str] = None) -> Dict:
    """Joins job outputs into out_dir/{feats.scp, utt2num_frames, feat_dim, failed, feats_type}.

    With `copy_tables`, text, text.phn and utt2spk of `data_dir` are copied next to them,
    keeping only utterances that have features, and spk2utt is rebuilt: out_dir is then
    a consistent data directory with feats.scp in place of wav.scp. Raw jobs (no ark)
    give wav.scp (+ segments) and utt2num_samples in place of feats.scp.

    Every utterance of `data_dir` must have features or a recorded reason; any job
    without its done-marker, or an utterance with neither, is an error. Utterances that
    `text` or `utt2spk` name but wav.scp (or segments) does not are failures too. A set
    with no features at all, or with more than `max_fail_ratio` of its utterances failed,
    raises FeatureError listing the reasons, and nothing is written.

    With `cmvn_out`, the sum of the jobs' CMVN stats (the global stats of feats.scp) is
    written there, once every job has checked in its stats; otherwise (jobs of an older
    version, raw jobs) any earlier file of that name is removed.
    """
    if cmvn_out:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(cmvn_out)  # a stale sum must never outlive the feats.scp it describes
    feats: Dict[str, str] = {}
    nframes: Dict[str, str] = {}
    nsamples: Dict[str, str] = {}
    failed: Dict[str, str] = {}
    kinds = set()
    done: Dict = {}
    dones: List[Dict] = []
    job_frames: List[int] = []
    for scp in scps:
        side = job_paths(scp)
        if not os.path.isfile(side["done"]):
            raise FeatureError(f"job output {scp} is incomplete (no {side['done']}); run the extraction again")
        with open(side["done"], encoding="utf-8") as f:
            done = json.load(f)
        dones.append(done)
        done.setdefault("feats_type", "fbank")
        kinds.add(json.dumps([done.get(k) for k in ("feat_dim", "feats_type", "compress", "fs", "resample", "fbank")]))
        raw = done["feats_type"] == "raw"
        tables = [(side["utt2num_samples"], nsamples) if raw else (scp, feats), (side["utt2num_frames"], nframes)]
        frames = 0
        for part, table in tables:
            for k, v, lineno in iter_table(part):
                if k in table:
                    raise FeatureError(f"{part}:{lineno}: utterance '{k}' also appears in another job")
                table[k] = v
                if table is nframes:
                    if not v.isdigit():
                        raise FeatureError(f"{part}:{lineno}: '{v}' is not a frame count")
                    frames += int(v)
        job_frames.append(frames)
        for k, v, _ in iter_table(side["failed"]):
            failed[k] = v
    if len(kinds) > 1:
        raise FeatureError(f"the jobs of {out_dir} were run with different feature options "
                           f"(dimension, feats_type, compression or fbank options); run them again together")
    raw = done.get("feats_type") == "raw"
    have = nsamples if raw else feats
    ids = utterance_ids(data_dir)
    missing = [u for u in ids if u not in have and u not in failed]
    if missing:
        raise FeatureError(f"{len(missing)} utterance(s) of {data_dir} have neither features nor a recorded reason "
                           f"(first: {', '.join(missing[:5])}); were all jobs run?")
    failed.update(lost_utterances(data_dir, set(ids)))
    total = len(have) + len(failed)
    if not have or len(failed) > max_fail_ratio * total:
        what = "no utterance has features" if not have else (
            f"{len(failed)} of {total} utterances failed, more than --max_fail_ratio {max_fail_ratio:g}")
        raise FeatureError(f"{data_dir}: {what}; nothing written. Reasons:\n" + describe_failures(failed))
    stats = sum_job_stats(scps, dones, job_frames) if cmvn_out and not raw else None
    os.makedirs(out_dir, exist_ok=True)
    if raw:
        _write_raw_tables(data_dir, out_dir, set(nsamples))
        write_table(os.path.join(out_dir, "utt2num_samples"), nsamples)
    else:
        write_table(os.path.join(out_dir, "feats.scp"), feats)
    write_table(os.path.join(out_dir, "utt2num_frames"), nframes)
    write_table(os.path.join(out_dir, "failed"), failed)
    with atomic_write(os.path.join(out_dir, "feat_dim")) as f:
        f.write(f"{done.get('feat_dim', 0)}\n")
    write_feats_type(out_dir, done.get("feats_type", "fbank"))
    if copy_tables:
        _copy_tables(data_dir, out_dir, set(have))
    if stats is not None:
        write_global(cmvn_out, stats)
    if failed:
        log.warning("%d of %d utterances have no features; reasons in %s", len(failed), len(have) + len(failed),
                    os.path.join(out_dir, "failed"))
    log.info("merged %d jobs: %d utterances into %s", len(scps), len(have),
             os.path.join(out_dir, "utt2num_samples" if raw else "feats.scp"))
    return {"num_utts": len(have), "num_failed": len(failed), "feats_type": done.get("feats_type", "fbank"),
            "compress": bool(done.get("compress", False)), "fbank": done.get("fbank"), "fs": done.get("fs"),
            "resample": done.get("resample")}


def sum_job_stats(scps: List[str], dones: List[Dict], job_frames: List[int]) -> Optional[np.ndarray]:
    """The sum of the jobs' CMVN stats (Kaldi's sum-matrices), each checked against its job's
    frame count; None when a job predates them (a pass over feats.scp then computes them)."""
    total = None
    for scp, done, frames in zip(scps, dones, job_frames):
        if "cmvn_stats" not in done:
            return None
        if not done["cmvn_stats"]:  # a job whose every utterance failed has no stats
            if frames:
                raise FeatureError(f"{job_paths(scp)['done']} says the job wrote no CMVN stats, but it has "
                                   f"{frames} frames; run the extraction again")
            continue
        path = job_paths(scp)["cmvn"]
        try:
            stats = read_stats(path)
        except (OSError, ValueError) as e:
            raise FeatureError(f"{e}; run the extraction again") from None
        if stats.shape != (2, int(done["feat_dim"]) + 1) or stats[0, -1] != frames:
            what = f"{stats[0, -1]:.0f} frames" if stats.shape == (2, int(done["feat_dim"]) + 1) else f"shape {stats.shape}"
            raise FeatureError(f"{path}: CMVN stats of {what} do not match the job ({frames} frames of "
                               f"dimension {done['feat_dim']}); run the extraction again")
        total = stats if total is None else total + stats
    return total


def write_feats_type(out_dir: str, kind: str) -> None:
    """`feats_type`, one word as ESPnet2 writes it: fbank or raw (the rest is in feats_conf.yaml)."""
    with atomic_write(os.path.join(out_dir, "feats_type")) as f:
        f.write(kind + "\n")


def _write_raw_tables(data_dir: str, out_dir: str, keep: Set[str]) -> None:
    """wav.scp (+ segments) of the kept utterances, values as in data_dir (paths or pipes)."""
    seg = os.path.join(data_dir, "segments")
    wav = [(k, v) for k, v, _ in iter_table(os.path.join(data_dir, "wav.scp"))]
    if os.path.isfile(seg):
        segs = [(k, v) for k, v, _ in iter_table(seg) if k in keep]
        recs = {v.split()[0] for _, v in segs}
        write_table(os.path.join(out_dir, "segments"), segs)
        write_table(os.path.join(out_dir, "wav.scp"), [(k, v) for k, v in wav if k in recs])
    else:
        write_table(os.path.join(out_dir, "wav.scp"), [(k, v) for k, v in wav if k in keep])


def lost_utterances(data_dir: str, ids: Set[str]) -> Dict[str, str]:
    """Utterances that text or utt2spk name but the audio tables (wav.scp or segments) do not."""
    audio = "segments" if os.path.isfile(os.path.join(data_dir, "segments")) else "wav.scp"
    lost: Dict[str, str] = {}
    for name in ("text", "utt2spk"):
        path = os.path.join(data_dir, name)
        if os.path.isfile(path):
            for k, _, _ in iter_table(path, allow_empty_value=(name == "text")):
                if k not in ids and k not in lost:
                    lost[k] = f"in {name} but not in {audio}"
    if lost:
        log.warning("%d utterance(s) of %s are in text/utt2spk but not in %s (e.g. %s); counted as failed",
                    len(lost), data_dir, audio, ", ".join(sorted(lost)[:3]))
    return lost


def describe_failures(failed: Dict[str, str], examples: int = 3, groups: int = 10) -> str:
    """Failures grouped by kind of reason (paths and numbers stripped), with counts and examples."""
    import re

    kinds: Dict[str, List[str]] = {}
    for utt in sorted(failed):
        kind = re.sub(r"\S*/\S*|'[^']*'|\d+(\.\d+)?", "_", failed[utt])
        kinds.setdefault(kind, []).append(utt)
    lines = []
    for kind, utts in sorted(kinds.items(), key=lambda kv: -len(kv[1]))[:groups]:
        eg = "; ".join(f"{u}: {failed[u]}" for u in utts[:examples])
        lines.append(f"  {len(utts)} x {eg}" + (" ..." if len(utts) > examples else ""))
    if len(kinds) > groups:
        lines.append(f"  ... and {len(kinds) - groups} other kinds of failure")
    return "\n".join(lines)


def _copy_tables(data_dir: str, out_dir: str, keep: Set[str]) -> None:
    for name in ("text", "text.phn", "utt2spk"):
        src = os.path.join(data_dir, name)
        if os.path.isfile(src):
            rows = [(k, v) for k, v, _ in iter_table(src, allow_empty_value=(name != "utt2spk")) if k in keep]
            write_table(os.path.join(out_dir, name), rows)
    if os.path.isfile(os.path.join(out_dir, "utt2spk")):
        spk2utt: Dict[str, List[str]] = {}
        for utt, spk, _ in iter_table(os.path.join(out_dir, "utt2spk")):
            spk2utt.setdefault(spk, []).append(utt)
        write_table(os.path.join(out_dir, "spk2utt"), {s: " ".join(u) for s, u in spk2utt.items()})
