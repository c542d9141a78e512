"""The peer of `aimesh-bench embed`: the same sentences embedded by sentence-transformers
(all-MiniLM-L6-v2 on PyTorch, CPU, every core) at the same client batch sizes, one `encode`
call at a time (how a Python service calls the library), with sentence-transformers'
max_seq_length of 256 for this model and normalised embeddings.

    python embed_peer.py --model-dir DIR --sentences FILE [--batch-sizes 1,8,32,128]
                         [--precisions float32,int8]

With `--precisions float32,int8` each batch size is also run with the model's linear layers
quantized to 8 bits by PyTorch's dynamic quantization (int8 weights, activations quantized per
call): the peer of aimesh's 8-bit feed-forward layers, so that both sides give up precision.

Prints `result<TAB>batch<TAB>sequential<TAB>sentences/s` lines (the float32 model) and
`result<TAB>batch<TAB>sequential-int8<TAB>sentences/s` (the int8 one), as aimesh-bench does.
"""

import argparse
import copy
import os
import time
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--sentences", required=True)
    parser.add_argument("--batch-sizes", default="1,8,32,128")
    parser.add_argument("--precisions", default="float32")
    args = parser.parse_args()
    precisions = args.precisions.split(",")
    if not set(precisions) <= {"float32", "int8"}:
        parser.error(f"--precisions: float32 or int8, not {args.precisions}")

    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    with open(args.sentences, encoding="utf-8") as f:
        sentences = [line.rstrip("\n") for line in f if line.strip()]
    started = time.perf_counter()
    model = SentenceTransformer(args.model_dir, device="cpu")
    model.max_seq_length = 256
    model.eval()
    print(
        f"sentence-transformers loaded in {time.perf_counter() - started:.1f} s; "
        f"{len(sentences)} sentences; torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    # torch.ao.quantization and its kernels print deprecation notices.
    warnings.simplefilter("ignore")
    models = {"float32": model}
    if "int8" in precisions:
        # A copy with every nn.Linear (the attention's projections and the feed-forward) on
        # int8 weights; embeddings, layer norms and attention's own products stay float32.
        # Per output channel: one scale per row of weights, PyTorch's most accurate int8
        # (its default, one scale per matrix, is further from float32).
        models["int8"] = torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(model),
            {torch.nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig},
        )

    def encode(model, texts, batch):
        return model.encode(
            texts,
            batch_size=batch,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )

    for precision in precisions:
        encode(models[precision], sentences[:64], 64)  # warm up
    if "int8" in precisions:
        # How far the int8 model's embeddings are from float32's (both unit length).
        sample = sentences[:256]
        similarity = (encode(models["int8"], sample, 64) * encode(model, sample, 64)).sum(1)
        print(
            f"int8 vs float32 embeddings, cosine over {len(sample)} sentences: "
            f"mean {similarity.mean():.5f}, min {similarity.min():.5f}"
        )
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        for precision in precisions:
            started = time.perf_counter()
            embedded = 0
            with torch.inference_mode():
                for i in range(0, len(sentences), batch):
                    embedded += len(encode(models[precision], sentences[i : i + batch], batch))
            rate = embedded / (time.perf_counter() - started)
            mode = "sequential" if precision == "float32" else f"sequential-{precision}"
            print(f"batch {batch:>4}, one call at a time, {precision}: {rate:>8.1f} sentences/s")
            print(f"result\t{batch}\t{mode}\t{rate:.1f}", flush=True)


if __name__ == "__main__":
    main()
