"""utils/run.pl, queue.pl, slurm.pl: one command line, local or on a cluster.

The cluster launchers run against fake schedulers (test/utils_sh/fake_sched/)
that record their argv and run the array tasks on this machine.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

UTILS = Path(__file__).resolve().parents[2] / "utils"


def launch(tool: str, *args: str, cwd: Path, env: dict | None = None):
    return subprocess.run([str(UTILS / tool), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60)


def check_framed_log(path: Path, command: str, code: int) -> list[str]:
    """Header and footer as Kaldi writes them; returns the lines in between."""
    lines = path.read_text().splitlines()
    assert lines[0] == f"# {command}"
    assert lines[1].startswith("# Started at ")
    assert lines[-2].startswith("# Accounting: time=")
    assert lines[-1].startswith(f"# Ended (code {code}) at ")
    assert lines[-1].endswith(" seconds") and ", elapsed time " in lines[-1]
    return [x for x in lines[2:-2] if not x.startswith("#")]


# ---------------------------------------------------------------- run.pl

def test_run_substitutes_job_in_command_and_log(tmp_path):
    res = launch("run.pl", "JOB=1:3", "exp/a/log/x.JOB.log", "echo", "job", "JOB", "data/split3/JOB",
                 cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    for i in (1, 2, 3):
        body = check_framed_log(tmp_path / f"exp/a/log/x.{i}.log",
                                f"echo job {i} data/split3/{i}", 0)
        assert body == [f"job {i} data/split3/{i}"]


def test_run_other_job_variable_name(tmp_path):
    res = launch("run.pl", "N=2:3", "log/n.N.log", "echo", "N", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert not (tmp_path / "log/n.1.log").exists()
    assert check_framed_log(tmp_path / "log/n.3.log", "echo 3", 0) == ["3"]


def test_run_single_job_form(tmp_path):
    res = launch("run.pl", "log/one.log", "echo", "hello", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert check_framed_log(tmp_path / "log/one.log", "echo hello", 0) == ["hello"]
    res = launch("run.pl", "log/bad.log", "exit", "3", cwd=tmp_path)
    assert res.returncode != 0
    assert "log is in log/bad.log" in res.stderr
    check_framed_log(tmp_path / "log/bad.log", "exit 3", 3)


def test_run_failure_names_failed_logs(tmp_path):
    res = launch("run.pl", "JOB=1:4", "log/x.JOB.log", "test", "JOB", "-ne", "2", "-a", "JOB", "-ne", "3",
                 cwd=tmp_path)
    assert res.returncode != 0
    assert "run.pl: 2 / 4 failed, log is in log/x.2.log" in res.stderr
    assert "log/x.3.log" in res.stderr and "log/x.1.log" not in res.stderr
    check_framed_log(tmp_path / "log/x.2.log", "test 2 -ne 2 -a 2 -ne 3", 1)
    check_framed_log(tmp_path / "log/x.4.log", "test 4 -ne 2 -a 4 -ne 3", 0)


@pytest.mark.parametrize("limit", [1, 2])
def test_run_max_jobs_run_limits_overlap(tmp_path, limit):
    (tmp_path / "t").mkdir()
    body = "date +%s%N > t/start.JOB; sleep 0.2; date +%s%N > t/end.JOB"
    res = launch("run.pl", "--max-jobs-run", str(limit), "JOB=1:4", "log/x.JOB.log", "bash", "-c",
                 body, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    events = []
    for i in range(1, 5):
        events.append((int((tmp_path / f"t/start.{i}").read_text()), 1))
        events.append((int((tmp_path / f"t/end.{i}").read_text()), -1))
    running = peak = 0
    for _, step in sorted(events, key=lambda e: (e[0], e[1])):
        running += step
        peak = max(peak, running)
    assert peak <= limit


def test_run_quoting_pipes_and_redirections(tmp_path):
    # As in a shell recipe: `printf ... \| tr a-z A-Z` and "ark:cat x |".
    res = launch("run.pl", "JOB=1:2", "log/q.JOB.log",
                 "printf", "<%s> \\n", "a  b", "it's JOB", "ark:cat x |",
                 "|", "tr", "a-z", "A-Z", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    body = check_framed_log(tmp_path / "log/q.2.log",
                            "printf '<%s> \\n' 'a  b' 'it'\\''s 2' 'ark:cat x |' | tr a-z A-Z", 0)
    assert body == ["<A  B> ", "<IT'S 2> ", "<ARK:CAT X |> "]
    res = launch("run.pl", "log/r.log", "echo", "hi", ">", "out.txt", cwd=tmp_path)
    assert res.returncode == 0 and (tmp_path / "out.txt").read_text() == "hi\n"


def test_run_accepts_cluster_options(tmp_path):
    res = launch("run.pl", "--mem", "4G", "--gpu", "0", "--num-threads", "2", "--config",
                 "conf/none.conf", "--time", "4:00:00", "JOB=1:2", "log/x.JOB.log", "true",
                 cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    text = (tmp_path / "log/x.1.log").read_text()
    assert "# Accounting: time=" in text and "threads=2" in text
    assert "mem=4G" in text


def test_run_rejects_array_into_one_log(tmp_path):
    res = launch("run.pl", "JOB=1:3", "log/all.log", "true", cwd=tmp_path)
    assert res.returncode != 0 and "log/all.log" in res.stderr


# ------------------------------------------------------ queue.pl, slurm.pl

SLURM = dict(tool="slurm.pl", submit="sbatch", task_var="SLURM_ARRAY_TASK_ID",
             conf="slurm.conf", query="squeue")
SGE = dict(tool="queue.pl", submit="qsub", task_var="SGE_TASK_ID",
           conf="queue.conf", query="qstat")
BOTH = pytest.mark.parametrize("sched", [SLURM, SGE], ids=["slurm", "sge"])


def has_seq(argv: list[str], *seq: str) -> bool:
    n = len(seq)
    return any(tuple(argv[i:i + n]) == seq for i in range(len(argv) - n + 1))


@BOTH
def test_cluster_job_script_and_logs(tmp_path, fake_sched, sched):
    res = launch(sched["tool"], "JOB=1:3", "exp/log/x.JOB.log", "echo", "task", "JOB", "a  b",
                 cwd=tmp_path, env=fake_sched.env)
    assert res.returncode == 0, res.stderr
    (submit,) = fake_sched.calls(sched["submit"])
    script = tmp_path / "exp/log/q/x.sh"
    assert submit[-1] == str(script)
    if sched is SLURM:
        assert "--array=1-3" in submit
    else:
        assert has_seq(submit, "-t", "1:3")
    text = script.read_text()
    assert text.startswith("#!/bin/bash\n")
    assert sched["task_var"] in text
    assert f"cd '{tmp_path}'" in text
    assert "cmd='echo task JOB '\\''a  b'\\'''" in text
    assert "cmd=${cmd//JOB/$task_id}" in text
    for i in (1, 2, 3):
        body = check_framed_log(tmp_path / f"exp/log/x.{i}.log", f"echo task {i} 'a  b'", 0)
        assert body == [f"task {i} a  b"]
    assert not list((tmp_path / "exp/log/q").glob("done.*")), "markers are cleaned up"


def test_slurm_builtin_option_mapping(tmp_path, fake_sched):
    res = launch("slurm.pl", "--mem", "4G", "--gpu", "1", "--num-threads", "2", "--max-jobs-run", "2",
                 "JOB=1:3", "log/x.JOB.log", "true", cwd=tmp_path, env=fake_sched.env)
    assert res.returncode == 0, res.stderr
    (argv,) = fake_sched.calls("sbatch")
    assert has_seq(argv, "--mem-per-cpu", "4G")
    assert has_seq(argv, "--cpus-per-task", "2")
    assert has_seq(argv, "-p", "gpu", "--gres=gpu:1")
    assert "--array=1-3%2" in argv
    assert "threads=2" in (tmp_path / "log/x.1.log").read_text()


def test_sge_builtin_option_mapping(tmp_path, fake_sched):
    res = launch("queue.pl", "--mem", "4G", "--gpu", "1", "--num-threads", "2", "--max-jobs-run", "2",
                 "-l", "h_rt=1:00:00", "JOB=1:3", "log/x.JOB.log", "true",
                 cwd=tmp_path, env=fake_sched.env)
    assert res.returncode == 0, res.stderr
    (argv,) = fake_sched.calls("qsub")
    assert has_seq(argv, "-l", "mem_free=4G,ram_free=4G")
    assert has_seq(argv, "-pe", "smp", "2")
    assert has_seq(argv, "-tc", "2")
    assert has_seq(argv, "-l", "gpu=1")
    assert has_seq(argv, "-l", "h_rt=1:00:00")


@BOTH
def test_cluster_conf_file_overrides_builtin(tmp_path, fake_sched, sched):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / sched["conf"]).write_text(
        f"# site config\ncommand {sched['submit']} --site-switch\n"
        "option mem=* --memory-is $0\ndefault gpu=0\noption gpu=0 --cpu-queue\n")
    res = launch(sched["tool"], "--mem", "3G", "JOB=1:2", "log/x.JOB.log", "true",
                 cwd=tmp_path, env=fake_sched.env)
    assert res.returncode == 0, res.stderr
    (argv,) = fake_sched.calls(sched["submit"])
    assert "--site-switch" in argv and "--cpu-queue" in argv
    assert has_seq(argv, "--memory-is", "3G")
    assert "--mem-per-cpu" not in argv and "mem_free=3G,ram_free=3G" not in argv
    # --config beats conf/<name>.conf.
    (tmp_path / "other.conf").write_text(f"command {sched['submit']} --other\noption mem=*\n")
    res = launch(sched["tool"], "--config", "other.conf", "--mem", "3G", "JOB=1:2",
                 "log/y.JOB.log", "true", cwd=tmp_path, env=fake_sched.env)
    assert res.returncode == 0, res.stderr
    argv = fake_sched.calls(sched["submit"])[-1]
    assert "--other" in argv and "--site-switch" not in argv and "3G" not in argv


@BOTH
def test_cluster_option_missing_from_conf_fails(tmp_path, fake_sched, sched):
    res = launch(sched["tool"], "--colour", "blue", "log/x.log", "true",
                 cwd=tmp_path, env=fake_sched.env)
    assert res.returncode != 0 and "--colour" in res.stderr
    assert fake_sched.calls(sched["submit"]) == []


@BOTH
def test_cluster_failure_propagates(tmp_path, fake_sched, sched):
    res = launch(sched["tool"], "JOB=1:3", "log/x.JOB.log", "test", "JOB", "-ne", "2",
                 cwd=tmp_path, env=fake_sched.env)
    assert res.returncode != 0
    assert f"{sched['tool']}: 1 / 3 failed, log is in log/x.2.log" in res.stderr
    check_framed_log(tmp_path / "log/x.2.log", "test 2 -ne 2", 1)


@BOTH
def test_cluster_vanished_task_is_a_failure(tmp_path, fake_sched, sched):
    env = dict(fake_sched.env, FAKE_SCHED_DROP="2", FAKE_SACCT_STATE="OUT_OF_MEMORY")
    res = launch(sched["tool"], "JOB=1:3", "log/x.JOB.log", "true", cwd=tmp_path, env=env)
    assert res.returncode != 0
    assert "1 / 3 failed, log is in log/x.2.log" in res.stderr
    note = (tmp_path / "log/x.2.log").read_text()
    assert "task 2 of job 123 left the queue" in note
    if sched is SLURM:
        assert "OUT_OF_MEMORY" in note
    assert fake_sched.calls(sched["query"]), "the scheduler was asked about the job"


@BOTH
def test_cluster_waits_for_running_tasks(tmp_path, fake_sched, sched):
    # Tasks run in the background for longer than the grace period; the
    # scheduler lists them as running, so they must not count as vanished.
    env = dict(fake_sched.env, FAKE_SCHED_ASYNC="1", BLJUST_LAUNCH_GRACE="0.1")
    res = launch(sched["tool"], "JOB=1:2", "log/x.JOB.log", "sleep", "0.8", "&&", "echo", "done",
                 cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stderr
    assert check_framed_log(tmp_path / "log/x.2.log", "sleep 0.8 && echo done", 0) == ["done"]
    assert len(fake_sched.calls(sched["query"])) >= 2


@BOTH
def test_cluster_submit_failure_is_reported(tmp_path, fake_sched, sched):
    env = dict(fake_sched.env, FAKE_SCHED_FAIL_SUBMIT="1")
    res = launch(sched["tool"], "log/x.log", "true", cwd=tmp_path, env=env)
    assert res.returncode != 0
    assert "submitting the job failed" in res.stderr
    assert ("Invalid partition" in res.stderr) or ("unknown resource" in res.stderr)


def test_slurm_cancels_job_when_interrupted(tmp_path, fake_sched):
    env = dict(fake_sched.env, FAKE_SCHED_ASYNC="1")
    proc = subprocess.Popen([str(UTILS / "slurm.pl"), "JOB=1:2", "log/x.JOB.log", "sleep", "1"],
                            cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while not fake_sched.calls("squeue") and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode != 0
    assert ["scancel", "123"] in fake_sched.calls("scancel")
    assert "cancelled job 123" in err
    # Let the fake's background tasks finish before tmp_path goes away.
    deadline = time.monotonic() + 10
    while list(fake_sched.state.glob("alive.*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert os.path.isdir(tmp_path)


@BOTH
def test_recipe_template_conf_files_parse(tmp_path, fake_sched, sched):
    """The conf files shipped in egs/TEMPLATE/asr1/conf map cmd.sh's options."""
    shipped = UTILS.parent / "egs/TEMPLATE/asr1/conf" / sched["conf"]
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / sched["conf"]).write_text(shipped.read_text())
    for gpu, queue in (("0", "cpu"), ("2", "gpu")):
        res = launch(sched["tool"], "--mem", "16G", "--num-threads", "4", "--gpu", gpu,
                     "--max-jobs-run", "3", "JOB=1:2", f"log/g{gpu}.JOB.log", "true",
                     cwd=tmp_path, env=fake_sched.env)
        assert res.returncode == 0, res.stderr
        argv = fake_sched.calls(sched["submit"])[-1]
        assert queue in argv
        assert "16G" in " ".join(argv) and "4" in argv
        if sched is SLURM:
            assert "--array=1-2%3" in argv and ("--gres=gpu:2" in argv) == (gpu == "2")


# ---------------------------------------------------------------- run.pl: CPUs and signals

def test_run_default_parallelism_ignores_omp_num_threads(tmp_path):
    """path.sh sets OMP_NUM_THREADS=1 for each job; run.pl must still use every CPU."""
    ncpu = os.cpu_count() or 1
    if ncpu < 2:
        pytest.skip("needs a machine with at least 2 CPUs")
    stamp = "for i in 1 2 3 4 5; do date +%s.%N >> t.JOB; sleep 0.1; done"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = launch("run.pl", "JOB=1:2", "log/x.JOB.log", "bash", "-c", stamp, cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stderr
    spans = [[float(x) for x in (tmp_path / f"t.{i}").read_text().split()] for i in (1, 2)]
    # the two jobs' runs overlap in time: they ran side by side, not one after the other
    assert spans[0][0] < spans[1][-1] and spans[1][0] < spans[0][-1], spans


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by its parent) is gone for our purposes
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"


def _default_signals() -> None:
    """As from a terminal: a suite started under nohup or with `&` passes SIGHUP / SIGINT as
    ignored, and bash cannot trap a signal that was ignored when it started."""
    for s in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(s, signal.SIG_DFL)


def _start_recipe_like(tmp_path: Path, job: str, env: dict | None = None):
    """A run.sh stand-in in its own session calling run.pl; returns (process, pids of the jobs' payload)."""
    script = tmp_path / "runner.sh"
    script.write_text(f"#!/usr/bin/env bash\n{UTILS / 'run.pl'} JOB=1:2 log/x.JOB.log {job}\necho after\n")
    script.chmod(0o755)
    proc = subprocess.Popen([str(script)], cwd=tmp_path, start_new_session=True, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_default_signals)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        pids = [int(p.read_text()) for p in tmp_path.glob("pid.*") if p.read_text().strip()]
        if len(pids) == 2:
            return proc, pids
        time.sleep(0.05)
    pids = [int(p.read_text()) for p in tmp_path.glob("pid.*") if p.read_text().strip()]
    _kill_leftovers(proc, pids)
    raise AssertionError("the two fake jobs did not start side by side")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_killing_the_recipe_process_group_stops_run_pl_jobs(tmp_path, sig):
    proc, pids = _start_recipe_like(tmp_path, "bash -c 'echo $$ > pid.JOB; exec sleep 60'")
    try:
        assert all(_alive(p) for p in pids)
        os.killpg(proc.pid, sig)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode != 0
        deadline = time.monotonic() + 5
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_alive(p) for p in pids), "a job outlived its launcher"
        assert "stopped the running jobs" in err
    finally:
        _kill_leftovers(proc, pids)


def _kill_leftovers(proc, pids):
    """A failing test must not leave its fake jobs running: the launcher first (so it starts no more), then the jobs."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for p in pids:
        try:
            group = os.getpgid(p)  # the job's own process group (run.pl's child leads it)
            if group != os.getpgrp():
                os.killpg(group, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def test_a_job_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path):
    env = dict(os.environ, BLJUST_RUNPL_KILL_AFTER="1")
    job = "bash -c 'trap \"\" TERM; echo $$ > pid.JOB; while true; do sleep 0.1; done'"
    proc, pids = _start_recipe_like(tmp_path, job, env=env)
    try:
        t0 = time.monotonic()
        os.killpg(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert time.monotonic() - t0 < 10
        time.sleep(0.2)
        assert not any(_alive(p) for p in pids)
        assert "ignored SIGTERM" in err
    finally:
        _kill_leftovers(proc, pids)
