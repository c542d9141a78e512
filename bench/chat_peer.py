"""The peer of `aimesh-bench chat`: the same greedy generation with llama.cpp (llama-cpp-python).

Loads the same GGUF file (and, for --formats q8_0 and q4_k, llama.cpp's own requantisation of
it, written once into --work-dir), renders the same ChatML prompt as the model's chat template (the
default system message, then the user message), and times each run like the aimesh side:
prompt processing until the first token is sampled, then one forward pass and one greedy sample
per further token, ignoring the end-of-turn token, for exactly --tokens tokens. Prints the
median of --runs runs after one warm-up run. Threads: one per core unless told otherwise.

The formats, each the counterpart of the aimesh side's:
  as-stored  the file as it is (Q4_1 matrices, Q8_0 token embeddings);
  q8_0       every matrix requantised to Q8_0, as aimesh's --weights q8_0 does (the same
             weights: both quantise the same values with GGML's Q8_0 rounding);
  q4_k       requantised to Q4_K. llama.cpp cannot store a row that is not a multiple of 256
             values as Q4_K and falls back to Q5_0 for those (SmolLM2's 576-wide rows: all but
             the feed-forward down projections) and keeps the output matrix at Q8_0; aimesh pads
             such rows with zeros instead and converts every matrix. So this pair compares
             kernels on similar, not equal, weights.

Run by scripts/bench-chat, which installs a pinned llama-cpp-python into a cache venv.
"""

import argparse
import ctypes
import os
import statistics
import sys
import time

import llama_cpp
from llama_cpp import Llama

# llama.cpp's file types for the requantised formats, and how the results name them.
FORMATS = {
    "as-stored": (None, "Q4_1 as stored"),
    "q8_0": (llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0, "requantised to Q8_0"),
    "q4_k": (llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_S, "requantised to Q4_K_S: Q5_0 where rows are 576 wide"),
}

# The same user message as crates/aimesh-bench/src/chat.rs.
PROMPT = (
    "Read the following notes and then write a detailed, friendly explanation for a new team "
    "member. The service mesh routes every request through a sidecar proxy that terminates TLS, "
    "checks the caller's identity, applies rate limits and retries, and records a trace span. "
    "Jobs are stored in PostgreSQL; workers claim them with a lease, renew the lease while they "
    "run, and a job whose lease expires is handed to another worker. Notes are small documents "
    "with a title, a body and tags; they are versioned, and an update must name the version it "
    "replaces. Inference engines run on dedicated threads fed by bounded queues, so a burst of "
    "requests is refused quickly instead of piling up. Explain how these parts fit together, "
    "what can go wrong in each, and how an operator would notice."
)
# What SmolLM2-135M-Instruct's chat template renders for [user PROMPT].
TEMPLATE = (
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\n<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"
)


def one_run(llm, prompt_tokens, tokens):
    llm.reset()
    started = time.perf_counter()
    llm.eval(prompt_tokens)
    token = llm.sample(top_k=1, temp=0.0)
    first = time.perf_counter()
    for _ in range(tokens - 1):
        llm.eval([token])
        token = llm.sample(top_k=1, temp=0.0)
    done = time.perf_counter()
    return len(prompt_tokens) / (first - started), (tokens - 1) / (done - first)


def requantised(model, name, ftype, work_dir):
    """llama.cpp's requantisation of `model` to `ftype` (its log, one line per tensor, silenced).

    Q8_0 is asked for pure: every matrix, the token embeddings too, as aimesh converts them.
    Q4_K is not: llama.cpp's pure mode aborts on rows it cannot store as Q4_K, and its mix
    falls back to Q5_0 for those and keeps the tied output matrix at Q8_0.
    """
    os.makedirs(work_dir, exist_ok=True)
    stem = os.path.splitext(os.path.basename(model))[0]
    out = os.path.join(work_dir, f"{stem}.requantised-{name}.gguf")
    if not os.path.exists(out):
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = ftype
        params.allow_requantize = True
        params.pure = name == "q8_0"
        params.nthread = os.cpu_count()
        partial = out + ".partial"
        stderr = os.dup(2)
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            try:
                failed = llama_cpp.llama_model_quantize(
                    model.encode(), partial.encode(), ctypes.byref(params)
                )
            finally:
                os.dup2(stderr, 2)
                os.close(stderr)
        if failed:
            sys.exit(f"llama.cpp could not requantise {model} to {name}")
        os.replace(partial, out)
    return out


def measure(path, name, label, args):
    started = time.perf_counter()
    llm = Llama(
        model_path=path,
        n_ctx=2048,
        n_batch=512,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        verbose=False,
    )
    load_secs = time.perf_counter() - started
    prompt_tokens = llm.tokenize(TEMPLATE.format(PROMPT).encode(), add_bos=False, special=True)
    runs = [one_run(llm, prompt_tokens, args.tokens) for _ in range(args.runs + 1)][1:]
    pp = statistics.median(run[0] for run in runs)
    tg = statistics.median(run[1] for run in runs)
    print(
        f"  llama.cpp [{name}] (llama-cpp-python, {label}): load {load_secs:.2f} s, prompt "
        f"{len(prompt_tokens)} tokens {pp:.1f} tok/s, generation {tg:.1f} tok/s",
        flush=True,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="the GGUF file")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--formats", default="as-stored", help="comma-separated: " + ", ".join(FORMATS))
    parser.add_argument("--work-dir", help="where requantised files are kept (q8_0, q4_k)")
    args = parser.parse_args()
    # What this build of llama.cpp uses (SIMD extensions, repacking, OpenMP): a slow figure
    # from a build without them says nothing about llama.cpp.
    info = llama_cpp.llama_print_system_info().decode().strip()
    print(f"  llama.cpp build: {info}", flush=True)

    for name in args.formats.split(","):
        if name not in FORMATS:
            parser.error(f"--formats: unknown format {name}")
        ftype, label = FORMATS[name]
        if ftype is None:
            path = args.model
        elif args.work_dir is None:
            parser.error(f"--formats {name} needs --work-dir")
        else:
            path = requantised(args.model, name, ftype, args.work_dir)
        measure(path, name, label, args)

if __name__ == "__main__":
    sys.exit(main())
