"""Running a recipe in a scratch folder of its own (never touching the real one's data/ or exp/)."""
import os
import subprocess

EGS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "egs")
LINKS = {"asr1": ("asr.sh", "path.sh", "cmd.sh", "run.sh", "utils", "local", "conf"),
         "ssft1": ("ssft.sh", "path.sh", "cmd.sh", "run.sh", "utils", "local", "conf")}


def make_recipe_copy(dst, corpus: str = "mini_synth", kind: str = "asr1") -> str:
    d = os.path.join(str(dst), kind)
    os.makedirs(d)
    for name in LINKS[kind]:
        os.symlink(os.path.join(EGS, corpus, kind, name), os.path.join(d, name))
    return d


def run_recipe(d: str, *args: str, check: bool = True, timeout: int = 1500) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.run(["./run.sh", *args], cwd=d, capture_output=True, text=True, env=env, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"run.sh {' '.join(args)} failed ({p.returncode}):\n{p.stderr[-6000:]}")
    return p
