"""Batches of the labelled feature dataset: padding, and batches built in shared memory by workers."""
import numpy as np
import torch

from bljust.data import dataset
from bljust.data.dataset import collate


def items():
    rng = np.random.default_rng(0)
    out = []
    for i, t in enumerate((7, 3, 5)):
        x = rng.standard_normal((t, 4)).astype(np.float32)
        x.setflags(write=False)  # kaldiio hands out read-only views of the bytes it read
        out.append((f"u{i}", x, list(range(1, i + 2))))
    return out


def test_collate_copies_each_utterance_and_zeroes_the_padding(monkeypatch):
    real = dataset._batch_tensor
    # the batch buffer is uninitialised: make its garbage visible
    monkeypatch.setattr(dataset, "_batch_tensor", lambda shape, dtype: real(shape, dtype).fill_(float("nan")))
    its = items()
    b = collate(its)
    assert b["feats"].shape == (3, 7, 4) and b["feat_lens"].tolist() == [7, 3, 5]
    for i, (_, x, y) in enumerate(its):
        assert torch.equal(b["feats"][i, : len(x)], torch.from_numpy(x.copy()))
        assert torch.all(b["feats"][i, len(x):] == 0)
        assert b["ys"][i, : len(y)].tolist() == y and torch.all(b["ys"][i, len(y):] == 0)
    assert b["y_lens"].tolist() == [1, 2, 3]


class _Items(torch.utils.data.Dataset):
    def __init__(self):
        self.items = items()

    def __len__(self):
        return 1

    def __getitem__(self, i):
        return self.items


def _collate_and_report(batch):
    b = collate(batch[0])
    b["born_shared"] = b["feats"].is_shared()
    return b


def test_a_worker_builds_the_batch_in_shared_memory():
    """The worker's queue would otherwise copy every batch into shared memory once more."""
    loader = torch.utils.data.DataLoader(_Items(), batch_size=1, collate_fn=_collate_and_report, num_workers=1)
    b = next(iter(loader))
    assert b["born_shared"] and b["feats"].shape == (3, 7, 4)
    assert not collate(items())["feats"].is_shared()  # in the training process: ordinary memory
