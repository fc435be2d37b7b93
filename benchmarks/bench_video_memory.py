"""Peak memory and time of reading a 1080p video with `train.data.scan_folder`, before and after.

"Before" is the reader of commit 4d41362 (every frame decoded at full size into one list, then the
whole stack converted to float and resized at once); "after" is today's `train/data.py` (frame by
frame, each frame resized as it is decoded). Both run the same way: `scan_folder(folder, frames=16,
size=64)` on a folder holding one generated 1920x1080, 30 fps H.264 clip, in a fresh Python process
that reports

- its own peak RSS (`ru_maxrss`), which includes the ~0.65 GB that importing torch, genloss and
  imageio takes before anything is read (reported as "after imports");
- the peak RSS of the ffmpeg process that decodes (both readers pipe frames from ffmpeg), read
  from its `/proc/<pid>/status` high-water mark while it runs;
- wall time of the scan alone, and its CPU time in Python and in ffmpeg (the CPU times hardly
  move when other jobs load the machine; the wall time does).

Python's and ffmpeg's peaks are separate processes; their sum bounds the total.

The old reader needs ~1.1 GB per second of 1080p video, so it only runs on short clips (a run is
skipped when its estimate does not fit in the free memory with 2 GB to spare); the new one runs up
to 60 s.

    python benchmarks/bench_video_memory.py                  # old on 2, 4, 8 s; new on 2, 4, 8, 60 s
    python benchmarks/bench_video_memory.py --old-seconds 2  # quicker
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OLD_COMMIT = "4d413624d72775927d260c3328d99a1b362d5183"  # the last full-resolution reader
WIDTH, HEIGHT = 1920, 1080

# Runs in the fresh process: argv = reader ("new" or a path to the old data.py), folder, frames, size.
CHILD = r"""
import importlib.util, json, os, resource, sys, threading, time
sys.path.insert(0, {root!r})
reader, folder, frames, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
path = {root!r} + "/train/data.py" if reader == "new" else reader
spec = importlib.util.spec_from_file_location("reader_under_test", path)
module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)  # dataclasses look it up
spec.loader.exec_module(module)
import genloss, imageio.v3, imageio_ffmpeg  # the trainer has them loaded: same baseline for both readers

# ffmpeg's peak: VmHWM of each child process (its high-water mark since exec), read every 5 ms
# while it runs. ru_maxrss of children would report the RSS of this process at fork time instead.
ffmpeg_peak_kb, done = [0], threading.Event()
def watch():
    while not done.is_set():
        for task in os.listdir("/proc/self/task"):
            try:
                children = open(f"/proc/self/task/{{task}}/children").read().split()
            except OSError:
                continue
            for pid in children:
                try:
                    if not open(f"/proc/{{pid}}/comm").read().startswith("ffmpeg"):
                        continue  # forked but not yet exec'd: its pages are this process's
                    for line in open(f"/proc/{{pid}}/status"):
                        if line.startswith("VmHWM:"):
                            ffmpeg_peak_kb[0] = max(ffmpeg_peak_kb[0], int(line.split()[1]))
                except OSError:
                    pass
        time.sleep(0.005)
watcher = threading.Thread(target=watch, daemon=True)
watcher.start()

def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime

baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
wall, cpu, ffmpeg_cpu = time.perf_counter(), time.process_time(), children_cpu()
scan = module.scan_folder(folder, frames, size)
wall, cpu, ffmpeg_cpu = time.perf_counter() - wall, time.process_time() - cpu, children_cpu() - ffmpeg_cpu
done.set()
watcher.join()
print(json.dumps({{
    "baseline_mb": baseline / 1024,
    "python_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "ffmpeg_peak_mb": ffmpeg_peak_kb[0] / 1024,
    "wall_s": wall, "cpu_s": cpu, "ffmpeg_cpu_s": ffmpeg_cpu,
    "frames": [int(v.shape[1]) for v in scan.videos], "shape": list(scan.videos[0].shape) if scan.videos else None,
    "corrupt": scan.corrupt,
}}))
"""


def make_clip(path: Path, seconds: float, fps: int) -> float:
    """Write a 1080p H.264 clip of a scrolling texture and a moving square; returns the seconds it took."""
    import imageio_ffmpeg

    start = time.perf_counter()
    rng = np.random.default_rng(0)
    # 8x8-pixel blocks of random colour, scrolled 4 px per frame: detail at every scale for the
    # encoder, and cheap to make (one slice per frame).
    texture = rng.integers(0, 256, size=(HEIGHT // 8, WIDTH // 8 + 64, 3), dtype=np.uint8)
    texture = texture.repeat(8, axis=0).repeat(8, axis=1)
    writer = imageio_ffmpeg.write_frames(str(path), (WIDTH, HEIGHT), fps=fps, quality=None, codec="libx264",
                                         macro_block_size=1, output_params=["-preset", "ultrafast", "-crf", "23"])
    writer.send(None)
    for t in range(round(seconds * fps)):
        shift = (4 * t) % 512
        frame = np.ascontiguousarray(texture[:, shift : shift + WIDTH])
        y, x = (7 * t) % (HEIGHT - 200), (11 * t) % (WIDTH - 200)
        frame[y : y + 200, x : x + 200] = (255, 255, 255)
        writer.send(frame)
    writer.close()
    return time.perf_counter() - start


def mem_available_mb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return float("inf")


def measure(reader: str, folder: Path, frames: int, size: int) -> dict:
    code = CHILD.format(root=str(ROOT))
    result = subprocess.run([sys.executable, "-c", code, reader, str(folder), str(frames), str(size)],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"reader {reader} on {folder} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--old-seconds", type=float, nargs="*", default=[2, 4, 8],
                        help="clip lengths for the old reader")
    parser.add_argument("--new-seconds", type=float, nargs="*", default=[2, 4, 8, 60],
                        help="clip lengths for the new reader")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--size", type=int, default=64, help="training resolution the clip is resized to")
    parser.add_argument("--frames", type=int, default=16, help="clip length T given to scan_folder")
    args = parser.parse_args()

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        old_reader = tmp / "old_data.py"
        old_reader.write_text(subprocess.run(["git", "-C", str(ROOT), "show", f"{OLD_COMMIT}:train/data.py"],
                                             capture_output=True, text=True, check=True).stdout)
        rows = []
        for seconds in sorted(set(args.old_seconds) | set(args.new_seconds)):
            folder = tmp / f"clip-{seconds:g}s"
            folder.mkdir()
            clip = folder / "clip.mp4"
            made = make_clip(clip, seconds, args.fps)
            print(f"{seconds:g} s clip: {round(seconds * args.fps)} frames, {clip.stat().st_size / 1e6:.1f} MB, "
                  f"written in {made:.1f} s", flush=True)
            for name, reader in (("old", str(old_reader)), ("new", "new")):
                if seconds not in (args.old_seconds if name == "old" else args.new_seconds):
                    continue
                # The old reader: ~1.1 GB per second of 1080p (4.5 GB measured for 4 s at 30 fps).
                need = 1150 * seconds * args.fps / 30 if name == "old" else 1500
                if need > mem_available_mb() - 2048:
                    free = mem_available_mb() / 1024
                    print(f"  {name}: skipped, needs ~{need / 1024:.1f} GB and {free:.1f} GB is free")
                    continue
                r = measure(reader, folder, args.frames, args.size)
                r.update(reader=name, seconds=seconds)
                rows.append(r)
                print(f"  {name}: python peak {r['python_peak_mb']:.0f} MB (after imports {r['baseline_mb']:.0f} MB), "
                      f"ffmpeg peak {r['ffmpeg_peak_mb']:.0f} MB, {r['wall_s']:.1f} s wall, "
                      f"CPU {r['cpu_s']:.1f} s Python + {r['ffmpeg_cpu_s']:.1f} s ffmpeg, "
                      f"frames {r['frames']}, shape {r['shape']}", flush=True)
            clip.unlink()

    print(f"\n| reader | clip (1080p, {args.fps} fps) | peak RSS: Python (after imports) | ffmpeg | sum "
          "| scan wall time | CPU: Python + ffmpeg |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        total = (r["python_peak_mb"] + r["ffmpeg_peak_mb"]) / 1024
        print(f"| {r['reader']} | {r['seconds']:g} s ({r['frames'][0]} frames) | {r['python_peak_mb'] / 1024:.2f} GB "
              f"({r['baseline_mb'] / 1024:.2f}) | {r['ffmpeg_peak_mb']:.0f} MB | {total:.2f} GB | {r['wall_s']:.1f} s "
              f"| {r['cpu_s']:.1f} + {r['ffmpeg_cpu_s']:.1f} s |")
    print(f"\nbenchmark took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
