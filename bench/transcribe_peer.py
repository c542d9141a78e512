"""faster-whisper on the same clip and the same Whisper tiny.en CTranslate2 model directory as
`aimesh-bench transcribe`: greedy decoding (beam 1, temperature 0, no fallback), timestamps on,
no VAD, no conditioning on previous text, one thread per core. Prints the median real-time
factor over a few runs after a warm-up run, for each compute type asked for.

CTranslate2 reads its vocabulary from vocabulary.json, which the pinned model does not ship:
it is written (into a scratch directory beside links to the pinned files) from tokenizer.json,
with the timestamp tokens the tokenizer lacks named as CTranslate2's converter names them."""

import argparse
import json
import os
import statistics
import tempfile
import time

from faster_whisper import WhisperModel


def with_vocabulary(model_dir, scratch):
    with open(os.path.join(model_dir, "tokenizer.json"), encoding="utf-8") as f:
        tokenizer = json.load(f)
    tokens = {i: t for t, i in tokenizer["model"]["vocab"].items()}
    tokens.update((t["id"], t["content"]) for t in tokenizer["added_tokens"])
    with open(os.path.join(model_dir, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    timestamp_begin = max(tokens) + 1
    vocab_size = timestamp_begin + 1501
    vocabulary = [
        tokens.get(i, "<|%.2f|>" % ((i - timestamp_begin) * 0.02)) for i in range(vocab_size)
    ]
    for name in ("model.bin", "config.json", "tokenizer.json"):
        os.symlink(os.path.join(os.path.abspath(model_dir), name), os.path.join(scratch, name))
    with open(os.path.join(scratch, "vocabulary.json"), "w", encoding="utf-8") as f:
        json.dump(vocabulary, f)
    assert config["suppress_ids"], "unexpected config.json"
    return scratch


def bench(model_dir, audio, compute_type, runs, threads):
    model = WhisperModel(model_dir, device="cpu", compute_type=compute_type, cpu_threads=threads)

    def transcribe():
        segments, info = model.transcribe(
            audio,
            language="en",
            beam_size=1,
            best_of=1,
            temperature=0.0,
            vad_filter=False,
            condition_on_previous_text=False,
            without_timestamps=False,
        )
        segments = list(segments)
        return " ".join(s.text.strip() for s in segments), info.duration, len(segments)

    text, duration, count = transcribe()
    print(f"faster-whisper ({compute_type}): {duration:.1f} s of audio, {count} segments, threads {threads}")
    print(f"  text: {text}")
    times = []
    for run in range(runs):
        started = time.perf_counter()
        transcribe()
        elapsed = time.perf_counter() - started
        times.append(elapsed)
        print(f"  run {run + 1}: {elapsed:.3f} s")
    median = statistics.median(times)
    rtf = median / duration
    print(
        f"faster-whisper ({compute_type}): median {median:.3f} s, real-time factor {rtf:.4f}, "
        f"{1 / rtf:.1f}x real time"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--audio", required=True)
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--compute-types", default="float32,default")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        model_dir = with_vocabulary(args.model_dir, scratch)
        for compute_type in args.compute_types.split(","):
            bench(model_dir, args.audio, compute_type, args.runs, args.threads)


if __name__ == "__main__":
    main()
