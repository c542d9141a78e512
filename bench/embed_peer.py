"""The peer of `aimesh-bench embed`: the same sentences embedded by sentence-transformers
(all-MiniLM-L6-v2 on PyTorch, CPU, every core) at the same client batch sizes, one `encode`
call at a time (how a Python service calls the library), with sentence-transformers'
max_seq_length of 256 for this model and normalised embeddings.

    python embed_peer.py --model-dir DIR --sentences FILE [--batch-sizes 1,8,32,128]

Prints `result<TAB>batch<TAB>sequential<TAB>sentences/s` lines, as aimesh-bench does.
"""

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--sentences", required=True)
    parser.add_argument("--batch-sizes", default="1,8,32,128")
    args = parser.parse_args()

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
    encode = lambda texts, batch: model.encode(  # noqa: E731
        texts,
        batch_size=batch,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    encode(sentences[:64], 64)  # warm up
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        started = time.perf_counter()
        embedded = 0
        with torch.inference_mode():
            for i in range(0, len(sentences), batch):
                embedded += len(encode(sentences[i : i + batch], batch))
        rate = embedded / (time.perf_counter() - started)
        print(f"batch {batch:>4}, one call at a time: {rate:>8.1f} sentences/s")
        print(f"result\t{batch}\tsequential\t{rate:.1f}", flush=True)


if __name__ == "__main__":
    main()
