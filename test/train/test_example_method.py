"""The example method of docs/training.md ("pre-train only", one file) trains in the training
core, resumes exactly after an early stop, and its config section is checked like any other."""
import importlib.util
import os
import re

import pytest
import torch

from train_synth import make_data_dir

from bljust.train import schema
from bljust.train.config import ConfigError, load_config

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "training.md")
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """docs/training.md's example file, written out and imported (its schema registered)."""
    text = open(DOC, encoding="utf-8").read()
    code = re.search(r"<!-- example: pretrain_only.py -->\n```python\n(.*?)```", text, re.S).group(1)
    path = tmp_path_factory.mktemp("example") / "pretrain_only.py"
    path.write_text(code)
    assert len(code.splitlines()) < 90  # one short file
    spec = importlib.util.spec_from_file_location("pretrain_only", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    yield mod
    schema.SCHEMAS.pop("pretrain_only", None)  # other tests see the project's own schemas only


def conf(data, out, **over):
    args = ["--unlab_data_dir", data, "--output_dir", out, "--steps", "4", "--num_threads", "1",
            "--encoder.d_model", "32", "--encoder.num_heads", "2", "--encoder.ffn_dim", "64",
            "--encoder.num_layers", "1", "--unsup.codebook_size", "16", "--batching.batch_bins", "400"]
    for k, v in over.items():
        args += [f"--{k}", str(v)]
    return load_config(None, args, "pretrain_only")


def test_example_method_trains_and_resumes_exactly(example, tmp_path):
    data = make_data_dir(str(tmp_path / "unlab"), 8)
    assert example.train(conf(data, str(tmp_path / "full")))
    assert not example.train(conf(data, str(tmp_path / "part"), max_steps=2))  # stopped early
    assert example.train(conf(data, str(tmp_path / "part")))
    a = torch.load(tmp_path / "full" / "checkpoint.pth", weights_only=True)
    b = torch.load(tmp_path / "part" / "checkpoint.pth", weights_only=True)
    assert a["loop"]["step"] == b["loop"]["step"] == 4 and a["loop"]["log"] == b["loop"]["log"]
    assert all(torch.equal(v, b["method"]["model"][k]) for k, v in a["method"]["model"].items())
    assert [r["step"] for r in a["loop"]["log"]] == [1, 2, 3, 4] and "bestrq_acc" in a["loop"]["log"][0]


def test_example_method_config_is_checked(example):
    with pytest.raises(ConfigError, match="--stepz: unknown key .did you mean 'steps'"):
        load_config(None, ["--stepz", "3"], "pretrain_only")
    with pytest.raises(ConfigError, match="steps"):
        load_config(None, ["--steps", "many"], "pretrain_only")
