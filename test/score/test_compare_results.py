"""The comparison table of stage 9: one row per method or sweep point, from train_summary.yaml."""
from bljust.score.compare import render


def row(label, variant=None, phases=None, sup=400, unsup=800, steps=800):
    return {"exp": f"exp/compare/p1200/{label}", "label": label, "variant": variant, "phases": phases,
            "passes_sup": sup, "passes_unsup": unsup, "steps": steps, "wall_seconds": 75.0,
            "wer": {"dev": 41.25, "test": 40.0}}


def test_a_row_per_run_with_its_sweep_point_and_phases():
    text = render([
        row("supervised only", phases={"explore": 0, "joint": 0, "finetune": 1200, "k": 1}, sup=1200, unsup=0,
            steps=1200),
        row("BL-JUST (CPC)", "gamma_max=0.3, k=2", {"explore": 300, "joint": 150, "finetune": 300, "k": 2}),
    ])
    lines = text.splitlines()
    assert lines[4] == ("|method|dev WER|test WER|training time|passes (sup + unsup = total)|steps"
                        "|N1 / N2 / N3 steps|")
    assert lines[6] == "|supervised only|41.2|40.0|1 minute and 15 seconds|1200 + 0 = 1200|1200|0 / 0 / 1200|"
    assert lines[7] == ("|BL-JUST (CPC) [gamma_max=0.3, k=2]|41.2|40.0|1 minute and 15 seconds"
                        "|400 + 800 = 1200|800|300 / 150 / 300 (K=2)|")


def test_a_summary_from_an_older_trainer_still_renders():
    text = render([row("BL-JUST (CPC)")])
    assert "|BL-JUST (CPC)|41.2|40.0|" in text and text.rstrip().endswith("|-|")
