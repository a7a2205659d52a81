"""TensorBoard event files for every trainer: <output_dir>/tensorboard/, as ESPnet writes them,
so that `tensorboard --logdir exp` shows every run of a recipe side by side.

Steps are counted as updates done (the first update logs step 1). A run resumed from a
checkpoint taken after update S reopens the directory with purge_step S + 1: the events
that a killed run wrote after its last checkpoint are hidden, and the curves join up as
if the run had never stopped.
"""
from __future__ import annotations

import atexit
import math
import os
from numbers import Real
from typing import Any, Dict, List, Mapping, Optional, Tuple


class EventLog:
    """Scalars keyed by name at an integer step; a no-op on ranks other than 0 (enabled=False)."""

    def __init__(self, output_dir: str, resume_step: int = 0, enabled: bool = True) -> None:
        self.dir = os.path.join(output_dir, "tensorboard")
        self.resume_step, self.enabled = int(resume_step), enabled
        self._writer: Optional[Any] = None

    def scalars(self, step: int, values: Mapping[str, Any], prefix: str = "") -> None:
        """Logs every finite number in `values` as <prefix><name>; other values are left out."""
        if not self.enabled:
            return
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(self.dir, purge_step=self.resume_step + 1 if self.resume_step else None)
            atexit.register(self.close)  # the writer's thread does not outlive the process
        for k, v in values.items():
            if isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(float(v)):
                self._writer.add_scalar(prefix + k, float(v), int(step))

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def read_scalars(output_dir: str) -> Dict[str, List[Tuple[int, float]]]:
    """tag -> [(step, value), ...] as TensorBoard shows them (purged steps left out)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(os.path.join(output_dir, "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
