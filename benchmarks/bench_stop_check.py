"""What the trainer's per-step stop decision costs in a multi-process job.

Every step, ``train.run.stop_requested`` all-gathers two integers (the stop signal a rank
received, whether it failed to write), so that all ranks stop at the same step even when only
one got the signal. This times that call in a 2-process CPU DDP job (gloo), the same way the
trainer runs it, against an all-gather of one float (what ``train_step``'s non-finite check
already does twice per step), interleaved, medians over repeats.

    python benchmarks/bench_stop_check.py          # launches itself as 2 CPU processes
    python benchmarks/bench_stop_check.py --calls 10 --repeats 1   # a smoke run
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000, help="calls timed per repeat (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved repeats, median reported "
                        "(default: %(default)s)")
    args = parser.parse_args(argv)
    if args.calls < 1 or args.repeats < 1:
        parser.error("--calls and --repeats must be >= 1")
    return args


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
    options = parse_args()  # also in each worker: --help and bad values stop before the launch
    if os.environ.get("WORLD_SIZE"):
        worker(options.calls, options.repeats)
    else:
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
        launched = subprocess.run(
            [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
             "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-q", __file__,
             "--calls", str(options.calls), "--repeats", str(options.repeats)], env=env, check=False)
        sys.exit(launched.returncode)
