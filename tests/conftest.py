"""Shared fixtures. ``tiny_run``: one launch of the real trainer, read by several test files;
``float64``: the default dtype float64 while a test builds its models and draws its noise.

Torch runs on one thread in tests (set at import, before any test builds a tensor). The tests'
tensors are tiny, so extra threads buy little, and the dev machine has 2 cores shared with other
jobs: there an OpenMP worker spin-waits at every parallel region's barrier for a core that
another process holds. Measured at load average 7 on that machine: test_perceptual, _temporal,
_metrics, _feature_matching and _regularizers took 123 s on torch's default 2 threads and 21 s
on one; ``test_float32_on_every_cpu_layout[vgg-nhwc]`` alone 10.1 s and 0.7 s. The trainer
subprocesses get ``OMP_NUM_THREADS=1`` for the same reason (``trainer_utils.launch``).
"""

from __future__ import annotations

import pytest
import torch

from trainer_utils import launch

torch.set_num_threads(1)

TINY_RUN_FLAGS = ("--run-name", "tiny", "--max-steps", "3", "--checkpoint-every", "2", "--sample-every", "2",
                  "--adv-start", "0", "--r1-gamma", "1", "--r1-interval", "2", "--keep-checkpoints", "2", "--report-to", "tensorboard")


@pytest.fixture
def float64():
    """Default dtype float64 while the test builds its models and draws its noise."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A 3-step run with checkpoints at 2 and 3, every loss term on from step 0, and TensorBoard:
    ``(tmp, result, flags)``, its run folder being ``tmp / "runs" / "tiny"``."""
    tmp = tmp_path_factory.mktemp("train")
    return tmp, launch(tmp, *TINY_RUN_FLAGS), TINY_RUN_FLAGS
