#!/usr/bin/env bash
# The benchmarks on one CUDA GPU with one command, in under 5 minutes.
#
# usage: [DEVICE=cuda] [BUDGET=285] [DRY_RUN=1] bash benchmarks/gpu.sh [RESULTS_FILE] | --help
#
#   bash benchmarks/gpu.sh                  # writes benchmarks/gpu-results.txt
#   bash benchmarks/gpu.sh /tmp/h200.txt    # or the path given
#   DEVICE=cpu BUDGET=90 bash benchmarks/gpu.sh /tmp/smoke.txt   # smoke test of this script, no GPU
#   DRY_RUN=1 bash benchmarks/gpu.sh /tmp/plan.txt   # print the commands it would run, run nothing
#
# Prints the GPU (nvidia-smi -L), the torch and CUDA versions and the commit, then runs, each with
# `--device $DEVICE` (cuda by default) under its own `timeout` (seconds):
#
#   bench_lpips.py --repeats 50           60  genloss.LPIPS against the lpips package, alex/squeeze/vgg
#   bench_lpips_tlp.py --repeats 20       45  LPIPS + tLP of an evaluation, 64 clips x 16 x 64x64
#   bench_temporal.py                     60  temporal losses and flow, B=4, T 4..32, H=W 32..256
#   bench_regularizers.py                 30  lazy R1 against R1 every step, 9 trials of 16 steps
#   bench_diagnostics.py --repeats 50     30  CompositeLoss(gradnorm_wrt=...) and diff_augment cost
#   bench_detect.py                       45  detectability anchors, 512 + 512 clips of 6x32x32
#   bench_distribution.py                 75  frechet_distance / kernel_distance (scipy refs on CPU)
#
# The benchmarks' own sizes are kept (their tables compare with the CPU ones in README.md); only
# the repeats go up where a GPU call takes about a millisecond and one sample would be noise. The
# whole script also stops at BUDGET seconds (285 by default): a benchmark gets its timeout or what
# is left of the budget, whichever is less, and is skipped when under 10 s remain. A benchmark
# that fails or times out is reported and the script goes on; it exits 1 if any did.
#
# Written without a GPU to test on: no GPU was available to this project's sessions. The script
# and every benchmark's cpu path were run here; the cuda paths were not. The timeouts are
# estimates (expected total about 2-3 minutes on one H200, most of it process start-up, CUDA
# initialisation and the CPU-side scipy references of bench_distribution.py).

set -euo pipefail
if [[ ${1:-} == -h || ${1:-} == --help ]]; then
    sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"  # the comment above
    exit 0
fi
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ -f .venv/bin/activate ]]; then
    # shellcheck disable=SC1091
    . .venv/bin/activate
fi

DEVICE=${DEVICE:-cuda}
BUDGET=${BUDGET:-285}
DRY_RUN=${DRY_RUN:-}
RESULTS=${1:-benchmarks/gpu-results.txt}
export PYTHONUNBUFFERED=1  # keep the benchmarks' lines in order with ours through tee

failed=()

bench() {  # bench <timeout s> <script> [args...]
    local limit=$1 script=$2
    shift 2
    if [[ -n $DRY_RUN ]]; then
        echo "python benchmarks/$script $* --device $DEVICE   (timeout ${limit} s)"
        return
    fi
    local left=$((BUDGET - SECONDS - 5))  # 5 s for --kill-after
    echo
    if ((left < 10)); then
        echo "=== $script: SKIPPED, ${left} s of the ${BUDGET} s budget left"
        failed+=("$script (skipped)")
        return
    fi
    if ((limit > left)); then
        limit=$left
    fi
    echo "=== python benchmarks/$script $* --device $DEVICE   (timeout ${limit} s)"
    local start=$SECONDS status=0
    timeout --kill-after=5 "$limit" python "benchmarks/$script" "$@" --device "$DEVICE" || status=$?
    if ((status == 124 || status == 137)); then
        echo "=== $script: TIMED OUT after ${limit} s"
        failed+=("$script (timed out)")
    elif ((status != 0)); then
        echo "=== $script: FAILED with exit status $status"
        failed+=("$script (exit $status)")
    fi
    echo "=== $script: $((SECONDS - start)) s"
}

run_all() {
    echo "# benchmarks/gpu.sh on $(hostname), $(date -u '+%Y-%m-%d %H:%M UTC'), device $DEVICE, budget ${BUDGET} s"
    echo "# commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
    if [[ -n $DRY_RUN ]]; then
        echo "# DRY_RUN: the commands only"
    elif [[ $DEVICE == cuda* ]]; then
        nvidia-smi -L || echo "nvidia-smi -L failed"
    fi
    [[ -n $DRY_RUN ]] || python - "$DEVICE" <<'EOF'
import sys

import torch

device = sys.argv[1]
print(f"# python {sys.version.split()[0]}, torch {torch.__version__}, built for CUDA {torch.version.cuda}, "
      f"cuDNN {torch.backends.cudnn.version()}, CUDA available: {torch.cuda.is_available()}")
if device.startswith("cuda"):
    if not torch.cuda.is_available():
        sys.exit(f"DEVICE={device}: CUDA is not available on this machine")
    props = torch.cuda.get_device_properties(torch.device(device))
    print(f"# {props.name}, {props.total_memory / 2**30:.0f} GiB, compute capability {props.major}.{props.minor}, "
          f"TF32 matmul {torch.backends.cuda.matmul.allow_tf32}, TF32 cuDNN {torch.backends.cudnn.allow_tf32}")
EOF

    bench 60 bench_lpips.py --repeats 50
    bench 45 bench_lpips_tlp.py --repeats 20
    bench 60 bench_temporal.py
    bench 30 bench_regularizers.py
    bench 30 bench_diagnostics.py --repeats 50
    bench 45 bench_detect.py
    bench 75 bench_distribution.py

    echo
    echo "# total ${SECONDS} s"
    if ((${#failed[@]})); then
        echo "# not complete: ${failed[*]}"
        return 1
    fi
    echo "# all benchmarks finished"
}

run_all 2>&1 | tee "$RESULTS"
