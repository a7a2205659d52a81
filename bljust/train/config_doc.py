"""docs/config.md, generated from the schema (bljust.train.schema) so that it lists every key.

    python -c "from bljust.train.config_doc import markdown; print(markdown(), end='')" > docs/config.md
"""
from __future__ import annotations

import dataclasses
from typing import Any, Iterator, List, Tuple

from bljust.train import schema as S
from bljust.train.config import _plain, _section_type, hints, type_name

ENTRY_POINTS = (("train", "bljust.bin.train"), ("ssft", "bljust.bin.ssft"), ("superb", "bljust.bin.train_superb"),
                ("pretrain", "bljust.bin.pretrain_upstream"))

INTRO = """# Training configuration

Every training entry point reads one YAML file (`--config`) and then command-line
overrides, `--section.key value` (the value is YAML: `--optim.betas "[0.9, 0.98]"`,
`--trainer.deterministic false`). A recipe's stage 9 sweep entry
`conf/x.yaml:bilevel.gamma_max=0.3:bilevel.k=2` becomes `--bilevel.gamma_max 0.3 --bilevel.k 2`.
The resolved configuration, every key filled in, is saved as `config.yaml` in the
experiment folder; passing that file as `--config` replays the run.

Every value is checked before anything runs. These are errors that name the file (or
the command-line option) and the key, end with one line on stderr and exit status 1
(`--debug` shows the traceback):

- an unknown key, with the closest known one (`encoder.num_haeds: unknown key (did you mean 'num_heads'?)`);
- a key that the chosen method, optimiser, schedule or loss does not read (the *only for*
  column): `trainer.accum_grad` in a bilevel config, `optim.momentum` with `adamw`,
  `unsup.codebook_size` with `cpc`, `scheduler.warmup_steps` with `constant`;
- a value of the wrong type: `lr: fast`, `max_epoch: 1.9` (an integer is expected, nothing is
  rounded), `betas: 0.9`, `batch_bins: "3000x"`, `deterministic: "false"` (a quoted string is
  not a boolean), `amp: fp32` (not one of none, bf16, fp16).

`trainer.max_steps` means the same in every trainer: stop after that many optimiser steps
without changing the schedule (tests, benchmarks); the schedule's length is `max_epoch`
(supervised), the phases (bilevel) or `max_updates` (LASER, SUPERB, pre-training).
`trainer.grad_clip` clips every update of every trainer, the bilevel levels included.
Without a GPU (`ngpu 0`) `trainer.amp` has no effect and the log says so.

A key the table marks "unset" keeps the default of the library that reads it (torch's
optimisers, the loss classes). The tables below are generated from
`bljust/train/schema.py`; a test checks that they list every key.
"""


def _fmt(v: Any) -> str:
    if v is None:
        return "unset"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, str):
        return v or '""'
    return str(_plain(v)).replace("'", "")


def rows(cls: type, default: Any, path: str = "") -> Iterator[Tuple[str, str, str, str, str]]:
    """(dotted key, type, default, only for, meaning) of every key of a section, sections expanded."""
    types_ = hints(cls)
    for f in dataclasses.fields(cls):
        tp = types_[f.name]
        sec, nullable = _section_type(tp)
        only = ", ".join(sorted(f.metadata.get("only", ())))
        if sec is not None:
            yield (path + f.name, "section" + (" or null" if nullable else ""), "", only, f.metadata.get("help", ""))
            sub = getattr(default, f.name) if default is not None else None
            yield from rows(sec, sub if sub is not None else sec(), path + f.name + ".")
        else:
            yield (path + f.name, type_name(tp), _fmt(getattr(default, f.name)), only, f.metadata.get("help", ""))


def markdown() -> str:
    out: List[str] = [INTRO]
    for kind, module in ENTRY_POINTS:
        cls = S.SCHEMAS[kind]
        out += [f"## `python -m {module}`", "", (cls.__doc__ or "").strip(), "",
                "| key | type | default | only for | meaning |", "|---|---|---|---|---|"]
        for k, tp, d, only, help_ in rows(cls, cls()):
            if tp.startswith("section"):
                out.append(f"| **`{k}`** | {tp} | | {only} | {help_} |")
            else:
                out.append(f"| `{k}` | {tp} | `{d}` | {only} | {help_.replace('|', '/')} |")
        out.append("")
    return "\n".join(out)
