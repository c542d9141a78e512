"""The peer of `aimesh-bench chat`: the same greedy generation with llama.cpp (llama-cpp-python).

Loads the same GGUF file, renders the same ChatML prompt as the model's chat template (the
default system message, then the user message), and times each run like the aimesh side:
prompt processing until the first token is sampled, then one forward pass and one greedy sample
per further token, ignoring the end-of-turn token, for exactly --tokens tokens. Prints the
median of --runs runs after one warm-up run. Threads: one per core unless told otherwise.

Run by scripts/bench-chat, which installs a pinned llama-cpp-python into a cache venv.
"""

import argparse
import os
import statistics
import sys
import time

from llama_cpp import Llama

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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="the GGUF file")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()

    started = time.perf_counter()
    llm = Llama(
        model_path=args.model,
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
        f"  llama.cpp (llama-cpp-python, Q4_1): load {load_secs:.2f} s, prompt "
        f"{len(prompt_tokens)} tokens {pp:.1f} tok/s, generation {tg:.1f} tok/s"
    )


if __name__ == "__main__":
    sys.exit(main())
