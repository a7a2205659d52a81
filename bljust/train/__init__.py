"""Training: the supervised trainer, BL-JUST (bilevel.py: the PBGD phases; bilevel_trainer.py: its
loop), LASER fine-tuning, SUPERB downstreams, checkpoints, configs and distributed setup."""
