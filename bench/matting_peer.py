"""The peer of `aimesh-bench matting`: ONNX Runtime runs the same model on the inputs aimesh
fed it (NAME.input.png, already at the network's size), normalised the same way; prints the
seconds per image and how far aimesh's mask (NAME.mask.png) is from ONNX Runtime's."""

import argparse
import glob
import os
import time

import numpy as np
import onnxruntime as ort
from PIL import Image

NORMALIZATIONS = {
    "isnet": ([0.5, 0.5, 0.5], [1.0, 1.0, 1.0]),
    "imagenet": ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--normalization", default="isnet", choices=NORMALIZATIONS)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    mean, std = (np.array(v, dtype=np.float32)[:, None, None] for v in NORMALIZATIONS[args.normalization])

    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    started = time.perf_counter()
    session = ort.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])
    load = time.perf_counter() - started
    input_name = session.get_inputs()[0].name
    output_name = session.get_outputs()[0].name
    print(f"onnxruntime {ort.__version__}: loaded in {load:.2f} s, {args.threads} threads")

    total, timed = 0.0, 0
    inputs = sorted(glob.glob(os.path.join(args.dir, "*.input.png")))
    for index, path in enumerate(inputs):
        name = os.path.basename(path)[: -len(".input.png")]
        pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
        tensor = ((pixels.transpose(2, 0, 1) - mean) / std)[None].astype(np.float32)
        started = time.perf_counter()
        mask = session.run([output_name], {input_name: tensor})[0]
        seconds = time.perf_counter() - started
        if index > 0 or len(inputs) == 1:
            total, timed = total + seconds, timed + 1
        theirs = np.clip(mask.reshape(pixels.shape[:2]).astype(np.float32), 0, 1) * 255.0
        ours = np.asarray(Image.open(os.path.join(args.dir, f"{name}.mask.png")), dtype=np.float32)
        difference = np.abs(ours - np.round(theirs))
        a, b = ours >= 128, theirs >= 128
        iou = (a & b).sum() / max((a | b).sum(), 1)
        foreground = b.mean() * 100
        print(
            f"result\tonnxruntime\t{name}\t{seconds:.3f}\t{foreground:.1f}"
            f"\t{difference.mean():.3f}\t{difference.max():.0f}\t{iou:.5f}"
        )
    print(f"mean\tonnxruntime\t{total / max(timed, 1):.3f}")


if __name__ == "__main__":
    main()
