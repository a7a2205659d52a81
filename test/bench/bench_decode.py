"""Real-time factor of CTC greedy and prefix beam search, beside torchaudio's
flashlight-text lexicon-free beam search (the peer) on the same posteriors.

    tools/venv/bin/python test/bench/bench_decode.py [--utts 100 --seconds 10 --vocab 256 5000]

Posteriors are random but peaky like a trained CTC model's (mostly blank, one
dominant token per frame), 25 frames/s (40 ms after 4x subsampling).
RTF = decoding time / audio duration. The peer needs the pip package
flashlight-text (`tools/setup.sh --bench` installs it); without it the peer is
skipped with a message.

Then the real-time factor of transcribing one long file end to end with Speech2Text
(fbank, the encoder over 30 s chunks with 4 s overlap, the joined CTC search): a
synthetic 10-minute signal and a random-weight model of the mini_synth default size
(conf/train_supervised.yaml's encoder: 4 Conformer blocks, d_model 144, ~2.5M
parameters; 80 mel bins, 128 tokens), on CPU with 1 thread.
"""
from __future__ import annotations

import argparse
import time

import torch

from bljust.decode.ctc import greedy_search, prefix_beam_search

FPS = 25


def peaky_log_probs(B: int, T: int, V: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, T, V, generator=g)
    blank = torch.rand(B, T, generator=g) < 0.7
    tok = torch.randint(1, V, (B, T), generator=g)
    dom = torch.where(blank, torch.zeros_like(tok), tok)
    logits.scatter_add_(2, dom[..., None], torch.full((B, T, 1), 8.0))
    return torch.log_softmax(logits, dim=-1).contiguous()


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def peer_decoder(V: int, beam: int):
    try:
        from torchaudio.models.decoder import ctc_decoder
    except Exception as e:  # noqa: BLE001 - report any import failure as "peer unavailable"
        return None, f"{type(e).__name__}: {e}"
    tokens = ["<blank>", "|"] + [f"t{i}" for i in range(2, V)]
    try:
        dec = ctc_decoder(lexicon=None, tokens=tokens, lm=None, beam_size=beam, beam_size_token=beam,
                          blank_token="<blank>", sil_token="|", unk_word="<unk>")
    except Exception as e:  # noqa: BLE001
        return None, f"{type(e).__name__}: {e}"
    return dec, ""


def compare(lp: torch.Tensor, ours, peer):
    """How often the best hypotheses agree and, where not, whose has the higher total
    CTC probability (forward algorithm: torch's ctc_loss)."""
    import torch.nn.functional as F

    agree = better = worse = 0
    for b, (o, q) in enumerate(zip(ours, peer)):
        mine, theirs = o[0].tokens, q[0].tokens.tolist()
        # the peer pads with its silence token (id 1) at both ends; ours never emits it here
        while theirs and theirs[0] == 1:
            theirs = theirs[1:]
        while theirs and theirs[-1] == 1:
            theirs = theirs[:-1]
        if mine == theirs:
            agree += 1
            continue
        x = lp[b : b + 1].transpose(0, 1)
        T = torch.tensor([x.shape[0]])
        nll = [float(F.ctc_loss(x, torch.tensor([s]), T, torch.tensor([len(s)]), reduction="sum"))
               for s in (mine, theirs)]
        better += nll[0] < nll[1]
        worse += nll[0] > nll[1]
    return agree, better, worse


def transcribe_rtf(minutes: float, beam: int) -> str:
    import os

    import numpy as np
    import yaml

    from bljust.features.fbank import FbankOptions
    from bljust.inference import Speech2Text
    from bljust.nets.asr_model import build_asr_model

    conf_file = os.path.join(os.path.dirname(__file__), "..", "..", "egs", "mini_synth", "asr1", "conf",
                             "train_supervised.yaml")
    with open(conf_file) as f:
        conf = yaml.safe_load(f)
    torch.manual_seed(0)
    model = build_asr_model(conf, 80, 128)

    class Tokens:  # ids shown as letters: the text is not what is measured
        blank_id = 0

        def decode(self, ids):
            return "".join(chr(97 + i % 26) for i in ids)

    rng = np.random.default_rng(0)
    n = int(minutes * 60 * 16000)
    t = np.arange(n) / 16000
    x = (3000 * np.sin(2 * np.pi * (150 + 50 * np.sin(0.5 * t)) * t) + rng.normal(0, 300, n)).astype(np.int16)
    out = []
    for method in ("greedy", "beam"):
        asr = Speech2Text(model, Tokens(), FbankOptions(), conf, decode_method=method, beam_size=beam)
        el = timed(lambda: asr(x, 16000))
        line = f"transcribe {method:6s} {minutes:.0f}-min file, 30 s chunks: RTF {el / (n / 16000):.4f} ({el:.1f} s)"
        print(line)
        out.append(f"{method} {el / (n / 16000):.4f}")
    return "transcribe RTF (" + ", ".join(out) + ")"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--utts", type=int, default=100)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--vocab", type=int, nargs="+", default=[256, 5000])
    p.add_argument("--beam", type=int, default=10)
    p.add_argument("--batch", type=int, default=100, help="utterances per beam-search call")
    p.add_argument("--transcribe_minutes", type=float, default=10.0, help="0: skip the transcribe figure")
    a = p.parse_args()
    torch.set_num_threads(1)
    T = int(a.seconds * FPS)
    audio = a.utts * a.seconds
    print(f"{a.utts} utterances x {a.seconds:.0f} s ({T} frames at {FPS}/s), beam {a.beam}, 1 thread")
    summary = []
    for V in a.vocab:
        lp = peaky_log_probs(a.utts, T, V)
        lens = torch.full((a.utts,), T)
        t_g = timed(lambda: greedy_search(lp, lens))
        ours = []
        t_b = timed(lambda: [ours.extend(prefix_beam_search(lp[i : i + a.batch], lens[i : i + a.batch], a.beam))
                             for i in range(0, a.utts, a.batch)])
        t_b1 = timed(lambda: [prefix_beam_search(lp[i : i + 1], lens[i : i + 1], a.beam) for i in range(min(a.utts, 10))])
        t_b1 *= a.utts / min(a.utts, 10)
        print(f"V={V:5d}  bljust greedy      RTF {t_g / audio:.6f}  ({t_g:.3f} s)")
        print(f"V={V:5d}  bljust beam {a.beam:<2d}     RTF {t_b / audio:.6f}  ({t_b:.3f} s, batch {a.batch})")
        print(f"V={V:5d}  bljust beam {a.beam:<2d}     RTF {t_b1 / audio:.6f}  ({t_b1:.3f} s, batch 1)")
        dec, why = peer_decoder(V, a.beam)
        if dec is None:
            print(f"V={V:5d}  torchaudio ctc_decoder (flashlight-text): skipped ({why}); "
                  "tools/setup.sh --bench installs flashlight-text")
            summary.append(f"V={V} greedy {t_g / audio:.6f} beam {t_b / audio:.6f} peer n/a")
            continue
        peer = []
        t_p = timed(lambda: peer.extend(dec(lp, lens)))
        print(f"V={V:5d}  torchaudio beam {a.beam:<2d} RTF {t_p / audio:.6f}  ({t_p:.3f} s, flashlight-text)")
        agree, better, worse = compare(lp, ours, peer)
        print(f"V={V:5d}  best hypotheses identical to the peer's: {agree}/{a.utts}; where they differ, ours has "
              f"the higher CTC probability in {better}, the peer in {worse}")
        summary.append(f"V={V} greedy {t_g / audio:.6f} beam {t_b / audio:.6f} peer {t_p / audio:.6f}")
    if a.transcribe_minutes > 0:
        summary.append(transcribe_rtf(a.transcribe_minutes, a.beam))
    print("RTF (bljust greedy, bljust beam, torchaudio beam): " + "; ".join(summary))


if __name__ == "__main__":
    main()
