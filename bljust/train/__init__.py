"""Training: run.py starts a run and picks the trainer from `method`; base.py holds what the
epoch trainers share; trainer.py is supervised CTC, bilevel.py the PBGD rule of BL-JUST and
bilevel_trainer.py its loop; LASER fine-tuning (ssft.py), SUPERB downstreams, upstream
pre-training, checkpoints, configs and distributed setup."""
