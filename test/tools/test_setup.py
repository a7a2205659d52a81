"""The installer: a second run is a no-op, and every pip call carries the torch guard."""
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SETUP = os.path.join(ROOT, "tools", "setup.sh")


def dry_run(venv: str, *extra: str) -> str:
    out = subprocess.run(["bash", SETUP, "--dry-run", "--venv", venv, "--python", sys.executable, *extra],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout


def pip_lines(text: str) -> list:
    return [line for line in text.splitlines() if line.startswith("+ ") and " -m pip " in line]


def fake_torch_venv(tmp_path, version: str) -> str:
    venv = str(tmp_path / "venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    purelib = subprocess.run([os.path.join(venv, "bin", "python"), "-c",
                              "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    os.makedirs(os.path.join(purelib, "torch"))
    with open(os.path.join(purelib, "torch", "__init__.py"), "w") as f:
        f.write(f"__version__ = {version!r}\n")
    return venv


def test_every_pip_call_uses_the_constraints_file_on_a_fresh_venv(tmp_path):
    venv = str(tmp_path / "venv")
    out = dry_run(venv)
    lines = pip_lines(out)
    assert len(lines) >= 3, out
    constraints = os.path.join(venv, "bljust-constraints.txt")
    for line in lines:
        assert f"-c {constraints}" in line, line
    assert open(constraints).read().strip() == "torch==2.13.0"
    assert any(re.search(r"\btorch==2\.13\.0\b", line) for line in lines)
    assert any("torchaudio==2.11.0" in line for line in lines)


def test_a_torch_already_in_the_venv_is_kept_and_pinned(tmp_path):
    venv = fake_torch_venv(tmp_path, "2.9.1+cu128")
    out = dry_run(venv)
    assert "keeping the torch already in the venv: 2.9.1+cu128" in out
    constraints = os.path.join(venv, "bljust-constraints.txt")
    assert open(constraints).read().strip() == "torch==2.9.1+cu128"
    lines = pip_lines(out)
    assert lines and all(f"-c {constraints}" in line for line in lines)
    assert not any(re.search(r"\btorch==", line) for line in lines), "torch must not be reinstalled"
    assert any("torchaudio==2.9.*" in line for line in lines)


BENCH_PEERS = ["kaldi-native-fbank", "tslearn", "pysdtw", "flashlight-text"]


def test_bench_installs_every_benchmark_peer_under_the_torch_constraint(tmp_path):
    venv = fake_torch_venv(tmp_path, "2.13.0+cpu")
    constraints = os.path.join(venv, "bljust-constraints.txt")
    plain = pip_lines(dry_run(venv))
    assert not any(peer in line for line in plain for peer in BENCH_PEERS), "peers only with --bench"
    lines = pip_lines(dry_run(venv, "--bench"))
    peer_lines = [line for line in lines if any(peer in line.split() for peer in BENCH_PEERS)]
    assert len(peer_lines) == 1, lines
    words = peer_lines[0].split()
    assert all(peer in words for peer in BENCH_PEERS), peer_lines[0]
    assert f"-c {constraints}" in peer_lines[0]
    assert open(constraints).read().strip() == "torch==2.13.0+cpu"
    assert not any(re.search(r"\btorch==", line) for line in lines), "the torch in the venv must be kept"


def test_every_bench_peer_is_installed_by_bench():
    """A bench that imports a peer package must find it in setup.sh's --bench list."""
    peers = {"kaldi_native_fbank": "kaldi-native-fbank", "tslearn": "tslearn", "pysdtw": "pysdtw",
             "torchaudio.models.decoder": "flashlight-text"}
    text = open(SETUP).read()
    listed = re.search(r"^bench_peers=\(([^)]*)\)", text, re.M).group(1).split()
    bench_dir = os.path.join(ROOT, "test", "bench")
    for name in sorted(os.listdir(bench_dir)):
        src = open(os.path.join(bench_dir, name)).read() if name.endswith(".py") else ""
        for module, package in peers.items():
            if re.search(rf"^\s*(from|import) {re.escape(module)}\b", src, re.M):
                assert package in listed, f"{name} imports {module} but tools/setup.sh --bench does not install {package}"


def test_no_pip_call_in_the_installers_bypasses_the_guard():
    for name in ["setup.sh"] + sorted(os.listdir(os.path.join(ROOT, "tools", "installers"))):
        path = os.path.join(ROOT, "tools", name) if name == "setup.sh" else os.path.join(ROOT, "tools", "installers", name)
        for lineno, line in enumerate(open(path), 1):
            code = line.split("#", 1)[0]
            if re.search(r"pip3?\b.*\binstall\b", code):
                assert "pip_install()" in code or "local cmd=" in code, f"{path}:{lineno} calls pip without the guard"


@pytest.mark.skipif(not os.path.exists(os.path.join(ROOT, "tools", "venv", ".bljust-setup.stamp")),
                    reason="tools/setup.sh has not been run in this checkout")
def test_second_run_is_a_no_op():
    out = subprocess.run(["bash", SETUP], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines() == [
        "[tools/setup.sh] everything is already installed (tools/venv, tools/sctk/bin/sclite, espeak-ng, sox): nothing to do"]
