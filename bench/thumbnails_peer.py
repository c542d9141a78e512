"""The peer of the gallery's thumbnail benchmark: the same JPEG files thumbnailed by Pillow as a
Python service would do it, one file after another on one thread: open, apply the EXIF
orientation, then for each box (256 and 1024 px) `Image.thumbnail` with Lanczos (which lets
the JPEG decoder scale down by DCT first, Pillow's own speed-up) and save as JPEG quality 82.

    python thumbnails_peer.py --dir DIR [--min-seconds 5]

Prints `result<TAB>pillow<TAB>files/s<TAB>thumbnails/s`, as the aimesh side does.
"""

import argparse
import io
import os
import time

import PIL
from PIL import Image, ImageOps

SIDES = (256, 1024)


def thumbnails(path: str) -> int:
    made = 0
    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image)
        for side in SIDES:
            copy = image.copy()
            copy.thumbnail((side, side), Image.Resampling.LANCZOS)
            out = io.BytesIO()
            copy.convert("RGB").save(out, "JPEG", quality=82)
            made += 1
    return made


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--min-seconds", type=float, default=5.0)
    args = parser.parse_args()
    files = sorted(
        os.path.join(args.dir, name) for name in os.listdir(args.dir) if name.endswith(".jpg")
    )
    thumbnails(files[0])  # warm up
    started = time.perf_counter()
    done_files = made = 0
    while True:
        for path in files:
            made += thumbnails(path)
            done_files += 1
        elapsed = time.perf_counter() - started
        if elapsed >= args.min_seconds:
            break
    print(f"Pillow {PIL.__version__}: {done_files} files in {elapsed:.2f} s")
    print(f"result\tpillow\t{done_files / elapsed:.2f}\t{made / elapsed:.2f}")


if __name__ == "__main__":
    main()
