"""utils/parse_options.sh: Kaldi-style --name value options for recipe scripts."""
from __future__ import annotations

import subprocess
from pathlib import Path

UTILS = Path(__file__).resolve().parents[2] / "utils"

SCRIPT = f"""#!/bin/bash
set -euo pipefail
nj=4
use_gpu=false
foo_bar=x
help_message="Usage: demo.sh [options] <dir>"
. "{UTILS}/parse_options.sh"
echo "nj=$nj"
echo "use_gpu=$use_gpu"
echo "foo_bar=$foo_bar"
for a in "$@"; do echo "arg=$a"; done
"""


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    script = tmp_path / "demo.sh"
    script.write_text(SCRIPT)
    return subprocess.run(["bash", str(script), *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=30)


def values(res: subprocess.CompletedProcess) -> dict:
    assert res.returncode == 0, res.stderr
    out: dict = {"arg": []}
    for line in res.stdout.splitlines():
        key, _, val = line.partition("=")
        if key == "arg":
            out["arg"].append(val)
        else:
            out[key] = val
    return out


def test_sets_a_declared_variable(tmp_path):
    v = values(run(tmp_path, "--nj", "8"))
    assert v["nj"] == "8" and v["foo_bar"] == "x"


def test_dashes_become_underscores_and_values_keep_spaces(tmp_path):
    v = values(run(tmp_path, "--foo-bar", "a  b 'c'"))
    assert v["foo_bar"] == "a  b 'c'"


def test_equals_form(tmp_path):
    v = values(run(tmp_path, "--nj=3", "--foo-bar=k=v"))
    assert v["nj"] == "3" and v["foo_bar"] == "k=v"


def test_stops_at_first_positional_argument(tmp_path):
    v = values(run(tmp_path, "--nj", "2", "data dir", "--nj", "5"))
    assert v["nj"] == "2"
    assert v["arg"] == ["data dir", "--nj", "5"]
    v = values(run(tmp_path, "--", "--nj", "5"))
    assert v["nj"] == "4" and v["arg"] == ["--nj", "5"]


def test_config_file_is_sourced_and_command_line_wins(tmp_path):
    (tmp_path / "my.conf").write_text('nj=7\nfoo_bar="from conf"\n')
    v = values(run(tmp_path, "--config", "my.conf"))
    assert v["nj"] == "7" and v["foo_bar"] == "from conf"
    # Explicit options beat the config wherever --config appears.
    v = values(run(tmp_path, "--nj", "9", "--config=my.conf", "pos"))
    assert v["nj"] == "9" and v["foo_bar"] == "from conf" and v["arg"] == ["pos"]


def test_missing_config_file_fails(tmp_path):
    res = run(tmp_path, "--config", "nowhere.conf")
    assert res.returncode != 0 and "nowhere.conf" in res.stderr


def test_boolean_takes_only_true_or_false(tmp_path):
    assert values(run(tmp_path, "--use-gpu", "true"))["use_gpu"] == "true"
    res = run(tmp_path, "--use-gpu", "yes")
    assert res.returncode != 0
    assert "--use-gpu" in res.stderr and "true or false" in res.stderr
    assert "nj=" not in res.stdout


def test_unknown_option_fails_with_its_name(tmp_path):
    res = run(tmp_path, "--nope", "1")
    assert res.returncode != 0
    assert "--nope" in res.stderr and "nj=" not in res.stdout


def test_option_without_value_fails(tmp_path):
    res = run(tmp_path, "--nj")
    assert res.returncode != 0 and "--nj" in res.stderr


def test_help_prints_help_message_and_exits_0(tmp_path):
    for flag in ("--help", "-h"):
        res = run(tmp_path, "--nj", "3", flag)
        assert res.returncode == 0
        assert res.stdout.strip() == "Usage: demo.sh [options] <dir>"
