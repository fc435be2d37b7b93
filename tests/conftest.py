"""Shared fixtures. ``tiny_run``: one launch of the real trainer, read by several test files."""

from __future__ import annotations

import pytest

from trainer_utils import launch

TINY_RUN_FLAGS = ("--run-name", "tiny", "--max-steps", "3", "--checkpoint-every", "2", "--sample-every", "2",
                  "--adv-start", "0", "--r1-interval", "2", "--keep-checkpoints", "2", "--report-to", "tensorboard")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A 3-step run with checkpoints at 2 and 3, every loss term on from step 0, and TensorBoard:
    ``(tmp, result, flags)``, its run folder being ``tmp / "runs" / "tiny"``."""
    tmp = tmp_path_factory.mktemp("train")
    return tmp, launch(tmp, *TINY_RUN_FLAGS), TINY_RUN_FLAGS
