"""YAML + command-line override parsing."""
import pytest
import yaml

from bljust.train.config import ConfigError, load_config, parse_overrides


def test_overrides_types_and_forms():
    assert parse_overrides(["--a.b", "3", "--c=x", "--d", "true", "--e", "1e-3", "--f", "[1, 2]", "--g", "null"]) == [
        ("a.b", 3), ("c", "x"), ("d", True), ("e", 1e-3), ("f", [1, 2]), ("g", None)]


def test_yaml_then_cli(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump({"encoder": {"num_layers": 7, "d_model": 512}, "optim": {"lr": 0.002}}))
    c = load_config(str(p), ["--encoder.num_layers", "3", "--trainer.max_epoch=4", "--output_dir", "exp/x",
                             "--optim.betas", "[0.9, 0.98]"])
    assert c["encoder"]["num_layers"] == 3 and c["encoder"]["d_model"] == 512
    assert c["encoder"]["kernel_size"] == 15  # untouched default survives
    assert c["optim"] == {"name": "adamw", "lr": 0.002, "weight_decay": 1e-6, "betas": [0.9, 0.98]}
    assert c["trainer"]["max_epoch"] == 4 and c["output_dir"] == "exp/x"


def test_unknown_keys_are_errors(tmp_path):
    with pytest.raises(ConfigError, match="trainer.max_epochs"):
        load_config(None, ["--trainer.max_epochs", "3"])
    with pytest.raises(ConfigError, match="no value"):
        load_config(None, ["--seed"])
    p = tmp_path / "c.yaml"
    p.write_text("batching: {batch_binz: 3}\n")
    with pytest.raises(ConfigError, match="c.yaml.*batching.batch_binz"):
        load_config(str(p))


def test_shipped_configs_load():
    import glob
    import os

    d = os.path.join(os.path.dirname(__file__), "..", "..", "egs", "TEMPLATE", "asr1", "conf", "tuning")
    files = sorted(glob.glob(os.path.join(d, "train_*.yaml")))
    assert len(files) >= 4
    for f in files:
        load_config(f)
