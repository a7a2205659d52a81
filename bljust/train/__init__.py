"""Training. loop.py is the training core every method runs in (loop, resume, checkpoints,
logging, rounds, keep-best and averaging); a method is one file that provides a step:
trainer.py (supervised CTC), bilevel_trainer.py (BL-JUST, with bilevel.py the PBGD rule),
ssft.py (LASER fine-tuning), superb_trainer.py (SUPERB downstreams), pretrain_upstream.py
(upstream pre-training). run.py starts the ASR methods; base.py is what they share; schema.py
and config.py the one config schema and loader (docs/training.md)."""
