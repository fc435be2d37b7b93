"""What the trainer's per-step stop decision costs in a multi-process job.

Every step, ``train.run.stop_requested`` all-gathers two integers (the stop signal a rank
received, whether it failed to write), so that all ranks stop at the same step even when only
one got the signal. This times that call in a 2-process CPU DDP job (gloo), the same way the
trainer runs it, against an all-gather of one float (what ``train_step``'s non-finite check
already does twice per step), interleaved, medians over repeats.

    python benchmarks/bench_stop_check.py          # launches itself as 2 CPU processes
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def worker(calls: int = 2000, repeats: int = 7) -> None:
    sys.path.insert(0, str(ROOT))
    import torch
    from accelerate import Accelerator
    from accelerate.utils import InitProcessGroupKwargs

    from train.run import stop_requested
    from train.safety import StopSignals

    torch.set_num_threads(1)
    accelerator = Accelerator(cpu=True, kwargs_handlers=[InitProcessGroupKwargs(backend="gloo")])
    signals = StopSignals(notice=False)
    flag = torch.ones(1)

    def timed(action) -> float:
        accelerator.wait_for_everyone()
        start = time.perf_counter()
        for _ in range(calls):
            action()
        return (time.perf_counter() - start) / calls * 1e6

    stop, gather = [], []
    for _ in range(repeats):
        stop.append(timed(lambda: stop_requested(accelerator, signals, False)))
        gather.append(timed(lambda: accelerator.gather(flag).min().item()))
    if accelerator.is_main_process:
        print(f"{accelerator.num_processes} processes, gloo, {calls} calls x {repeats} repeats (median per call):")
        print(f"  stop_requested (all-gather of 2 int64):   {statistics.median(stop):7.1f} us")
        print(f"  all_finite's all-gather of 1 float:       {statistics.median(gather):7.1f} us")
        print("  a default training step on 2 CPU processes takes ~250 ms (benchmarks/bench_trainer.py)")
    accelerator.end_training()


if __name__ == "__main__":
    if os.environ.get("WORLD_SIZE"):
        worker()
    else:
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
        subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", __file__],
                       check=True, env=env, cwd=ROOT)
