"""The BL-JUST trainer end to end on synthetic features: schedule, passes, outputs, exact resume."""
import os

import pytest
import torch
import yaml

from train_synth import make_data_dir, run_driver, tiny_config

from bljust.train.bilevel_trainer import phase_steps
from bljust.utils.events import read_scalars


def bilevel_config(tmp, out, unsup="cpc", **bilevel):
    conf = tiny_config(tmp, out, save_interval_steps=1)
    conf.update(method="bilevel", unlab_data_dir=f"{tmp}/unlab")
    conf["unsup"] = {"cpc": {"name": "cpc", "num_steps": 2, "num_negatives": 8, "proj_dim": 16},
                     "bestrq": {"name": "bestrq", "codebook_size": 32, "codebook_dim": 8, "mask_prob": 0.1,
                                "mask_span": 6},
                     "laser": {"name": "laser", "proj_dim": 16}}[unsup]
    conf["bilevel"].update(n1=3, n2=4, n3=3, k=1, gamma0=0.5, gamma_max=2.0, valid_interval=5)
    conf["bilevel"].update(bilevel)
    return conf


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("bl"))
    make_data_dir(f"{tmp}/train", 12)
    make_data_dir(f"{tmp}/dev", 4, seed=1)
    make_data_dir(f"{tmp}/unlab", 20, seed=2)
    return tmp


def run_ok(conf, tmp, name):
    p = run_driver(conf, tmp, name)
    out, _ = p.communicate(timeout=300)
    assert p.returncode == 0, out
    return out


@pytest.mark.parametrize("unsup", ["cpc", "bestrq", "laser"])
def test_schedule_passes_and_outputs(data, unsup):
    out_dir = f"{data}/run_{unsup}"
    log = run_ok(bilevel_config(data, out_dir, unsup), data, f"run_{unsup}")
    summ = yaml.safe_load(open(f"{out_dir}/train_summary.yaml"))
    # explore 3 x 1 g; joint 4 x (1 + 1) g and 4 f; fine-tune 3 f
    assert (summ["passes_unsup"], summ["passes_sup"], summ["steps"]) == (3 + 8, 4 + 3, 10)
    for f in ("model.pth", "config.yaml", "checkpoint.pth", "images/f_g.png", "images/gamma_penalty.png"):
        assert os.path.exists(f"{out_dir}/{f}"), f
    for word in ("[explore]", "[joint]", "[finetune]", "gamma", "cos_fg", "penalty"):
        assert word in log, word
    tb = read_scalars(out_dir)  # every logged step, for `tensorboard --logdir exp`
    for tag in ("train/f", "train/g", "train/gamma", "train/penalty", "round/valid_loss"):
        assert tag in tb, tag
    assert tb["train/g"][0][0] == 2 and tb["train/f"][-1][0] == 10


def test_resume_mid_joint_phase_is_exact(data):
    ref = bilevel_config(data, f"{data}/ref")
    run_ok(ref, data, "ref")
    part = bilevel_config(data, f"{data}/part")
    part["trainer"]["max_steps"] = 5  # stops inside the joint phase (steps 4..7)
    run_ok(part, data, "part1")
    ck = torch.load(f"{data}/part/checkpoint.pth", weights_only=True)
    assert ck["loop"]["step"] == 5 and ck["method"]["pbgd"]["passes"] == {"sup": 2, "unsup": 3 + 4}
    part["trainer"]["max_steps"] = 0
    out = run_ok(part, data, "part2")
    assert "resumed at step" in out
    a = torch.load(f"{data}/ref/checkpoint.pth", weights_only=True)
    b = torch.load(f"{data}/part/checkpoint.pth", weights_only=True)
    for section in ("model", "unsup"):
        for k in a["method"][section]:
            assert torch.equal(a["method"][section][k], b["method"][section][k]), (section, k)
    assert a["method"]["streams"] == b["method"]["streams"] and a["method"]["pbgd"]["passes"] == b["method"]["pbgd"]["passes"]


def test_loader_workers_give_the_same_run_and_resume_exactly(data):
    ref = bilevel_config(data, f"{data}/ref_w0")
    run_ok(ref, data, "ref_w0")
    part = bilevel_config(data, f"{data}/part_w2")
    part["trainer"].update(num_workers=2, max_steps=5)
    assert "2 loader workers per stream" in run_ok(part, data, "part_w2a")
    part["trainer"]["max_steps"] = 0
    assert "resumed at step 5" in run_ok(part, data, "part_w2b")
    a = torch.load(f"{data}/ref_w0/checkpoint.pth", weights_only=True)
    b = torch.load(f"{data}/part_w2/checkpoint.pth", weights_only=True)
    for section in ("model", "unsup"):
        for k in a["method"][section]:
            assert torch.equal(a["method"][section][k], b["method"][section][k]), (section, k)
    assert a["method"]["streams"] == b["method"]["streams"]


class _Pids(torch.utils.data.Dataset):
    """Tags each item's key with the id of the process that read it."""

    def __init__(self, ds):
        self.ds = ds

    def __getitem__(self, key):
        k, x, y = self.ds[key]
        return f"{k}@{os.getpid()}", x, y


def test_batch_stream_reads_in_workers_and_counts_only_batches_handed_out(data):
    from bljust.data.dataset import ASRDataset
    from bljust.train.bilevel_trainer import BatchStream
    from bljust.train.distributed import DistInfo

    ds = ASRDataset(f"{data}/unlab", None, labeled=False)
    one = DistInfo(rank=0, world_size=1, local_rank=0)

    def stream(workers):
        return BatchStream(_Pids(ds), ds.lengths, {"batch_bins": 300}, seed=3, dist=one, num_workers=workers)

    def take(s, n):
        out = []
        for _ in range(n):
            b = s.next()
            out.append(([k.split("@")[0] for k in b["keys"]], {int(k.split("@")[1]) for k in b["keys"]},
                        b["global_size"], b["feats"].clone()))
        return out

    main, workers = stream(0), stream(2)
    n = 2 * len(main) + 1  # crosses two epoch boundaries
    a, b = take(main, n), take(workers, n)
    assert [x[0] for x in a] == [x[0] for x in b] and all(x[2] == len(x[0]) for x in a + b)
    assert all(torch.equal(x[3], y[3]) for x, y in zip(a, b))
    assert {p for x in a for p in x[1]} == {os.getpid()}
    assert os.getpid() not in {p for x in b for p in x[1]}, "num_workers=2 must read in worker processes"
    # the workers have prefetched past pos; a restored stream starts at pos, not after the prefetch
    st = workers.state_dict()
    resumed = stream(2)
    resumed.load_state_dict(st)
    after = [x[0] for x in take(main, 3)]
    assert [x[0] for x in take(resumed, 3)] == after
    assert [x[0] for x in take(workers, 3)] == after
    workers.load_state_dict(st)  # rewinding a running stream drops what its workers prefetched
    assert [x[0] for x in take(workers, 3)] == after


def test_budget_of_passes_sets_equal_compute():
    for k, reuse, fr in ((1, False, [0.25, 0.5, 0.25]), (2, True, [0.2, 0.6, 0.2]), (0, False, [0, 1, 0])):
        bc = {"budget_passes": 1200, "budget_fractions": fr, "k": k, "reuse_lower_grad": reuse}
        st = phase_steps(bc, 10, 10)
        per_joint = k + 1 + (0 if reuse and k > 0 else 1)
        assert st["n1"] + st["n2"] * per_joint + st["n3"] == pytest.approx(1200, abs=per_joint)


def test_phase_lengths_in_epochs():
    st = phase_steps({"n1_epochs": 2, "n2_epochs": 0.5, "n3_epochs": 1, "n1": 99}, n_lab=10, n_unlab=30)
    assert st == {"n1": 60, "n2": 5, "n3": 10}


def test_unlabeled_data_needs_no_text_or_tokenizer(data):
    from bljust.data.dataset import ASRDataset

    ds = ASRDataset(f"{data}/unlab", None, labeled=False)
    assert len(ds) == 20 and all(ids == [] for _, _, ids in (ds[k] for k in list(ds.lengths)[:3]))


def test_shadow_reference_is_trained_and_checkpointed(data):
    conf = bilevel_config(data, f"{data}/shadow", penalty_ref="shadow")
    log = run_ok(conf, data, "shadow")
    ck = torch.load(f"{data}/shadow/checkpoint.pth", weights_only=True)
    assert ck["method"]["shadow"] is not None and "penalty" in log
    # the shadow copy learned on g alone, so it has left the jointly trained encoder behind
    shadow_w = ck["method"]["shadow"]["modules"]["model.encoder.subsample.out.weight"]
    assert not torch.equal(shadow_w, ck["method"]["model"]["encoder.subsample.out.weight"])


def test_explore_phase_rounds_checkpoint_without_validating(data):
    out_dir = f"{data}/explore_rounds"
    conf = bilevel_config(data, out_dir, n1=6, n2=2, n3=2, valid_interval=3)
    log = run_ok(conf, data, "explore_rounds")
    hist = torch.load(f"{out_dir}/checkpoint.pth", weights_only=True)["loop"]["history"]
    assert [h["step"] for h in hist] == [3, 6, 9, 10]
    assert [("valid_loss" in h) for h in hist] == [False, False, True, True]  # the CTC head is untrained before
    assert log.count("explore phase): checkpoint only") == 2
    assert os.path.exists(f"{out_dir}/model.pth")


def test_trainer_grad_clip_is_the_pbgd_clip(data):
    """One clipping key for every trainer: the bilevel trainer clips every level at trainer.grad_clip."""
    from train_synth import CharTokenizer

    from bljust.data.dataset import ASRDataset
    from bljust.nets.asr_model import build_asr_model
    from bljust.train import distributed as D
    from bljust.train.bilevel_trainer import BilevelMethod

    conf = bilevel_config(data, f"{data}/clip")
    conf["trainer"]["grad_clip"] = 0.25
    tok = CharTokenizer()
    train = ASRDataset(f"{data}/train", tok, 7)
    unlab = ASRDataset(f"{data}/unlab", None, 7, labeled=False)
    model = build_asr_model(conf, train.feat_dim, tok.vocab_size)
    os.makedirs(conf["output_dir"])
    t = BilevelMethod(conf, model, train, unlab, None, tok, D.DistInfo(), torch.device("cpu"))
    assert t.pcfg.grad_clip == 0.25


def test_bilevel_without_unlabeled_data_is_a_config_error_before_any_output(data):
    from train_synth import CharTokenizer

    from bljust.train.config import ConfigError
    from bljust.train.run import train

    conf = bilevel_config(data, f"{data}/no_unlab")
    conf["unlab_data_dir"] = None
    with pytest.raises(ConfigError, match="method bilevel needs --unlab_data_dir"):
        train(conf, tokenizer=CharTokenizer())
    assert not os.path.exists(f"{data}/no_unlab")  # nothing written, no config.yaml to mislead a later run
