"""Checkpoint averaging and loading a trained model for inference."""
import os

import numpy as np
import torch
import yaml

from bljust.bin.average_checkpoints import main as average_main
from bljust.nets.asr_model import build_asr_model
from bljust.nets.model_file import load_model_for_inference
from bljust.train.checkpoint import average_state_dicts
from bljust.train.config import load_config


def test_average_is_the_mean(tmp_path):
    sds = []
    for i in range(3):
        torch.manual_seed(i)
        sd = {"w": torch.randn(4, 3), "b": torch.randn(3), "count": torch.tensor(i + 1)}
        torch.save(sd, tmp_path / f"{i}.pth")
        sds.append(sd)
    avg = average_state_dicts([str(tmp_path / f"{i}.pth") for i in range(3)])
    for k in ("w", "b"):
        assert torch.allclose(avg[k], torch.stack([s[k] for s in sds]).mean(0), atol=1e-7)
        assert avg[k].dtype == torch.float32
    assert int(avg["count"]) == 2
    assert average_main(["--output", str(tmp_path / "avg.pth")] + [str(tmp_path / f"{i}.pth") for i in range(3)]) == 0
    assert torch.allclose(torch.load(tmp_path / "avg.pth", weights_only=True)["w"], avg["w"])


def test_load_model_for_inference(tmp_path):
    conf = load_config(None, ["--encoder.num_layers", "1", "--encoder.d_model", "16", "--encoder.num_heads", "2"])
    conf["model_info"] = {"input_dim": 20, "vocab_size": 9}
    mean, istd = np.arange(20, dtype=np.float32), np.full(20, 0.5, np.float32)
    model = build_asr_model(conf, 20, 9, mean, istd)
    torch.save(model.state_dict(), tmp_path / "model.pth")
    with open(tmp_path / "config.yaml", "w") as f:
        yaml.safe_dump(conf, f)
    loaded, c = load_model_for_inference(str(tmp_path / "model.pth"))
    assert not loaded.training and c["model_info"]["vocab_size"] == 9
    assert torch.equal(loaded.normalize.mean, torch.arange(20.0))  # CMVN travels with the model
    x, n = torch.randn(2, 50, 20), torch.tensor([50, 40])
    model.eval()
    assert torch.equal(loaded.encode(x, n)[0], model.encode(x, n)[0])
    assert os.path.basename(str(tmp_path / "model.pth")) == "model.pth"
