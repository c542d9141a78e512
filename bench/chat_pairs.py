"""Pairs the rounds of scripts/bench-chat: for each weight format, the ratio of aimesh's speed to
llama.cpp's in each round (prompt processing and generation), then their median and range.

Reads the benchmark's output, whose result lines name their side and format:
  aimesh [q8_0] (...): load ... prompt 193 tokens 790.3 tok/s, generation 103.1 tok/s
  llama.cpp [q8_0] (...): ...
"""

import re
import statistics
import sys

LINE = re.compile(
    r"^\s*(aimesh|llama\.cpp) \[([\w-]+)\].*prompt \d+ tokens ([\d.]+) tok/s, "
    r"generation ([\d.]+) tok/s"
)


def main(path):
    rounds = []  # one dict per round: (side, format) -> (prompt, generation)
    with open(path) as log:
        for line in log:
            if line.startswith("-- round"):
                rounds.append({})
            elif (m := LINE.match(line)) and rounds:
                rounds[-1][(m[1], m[2])] = (float(m[3]), float(m[4]))
    formats = sorted({fmt for r in rounds for (_, fmt) in r}, key=str)
    print("== aimesh / llama.cpp, per round, then median [range] ==")
    for fmt in formats:
        pp, tg = [], []
        for r in rounds:
            ours, theirs = r.get(("aimesh", fmt)), r.get(("llama.cpp", fmt))
            if ours and theirs:
                pp.append(ours[0] / theirs[0])
                tg.append(ours[1] / theirs[1])
        if not pp:
            continue

        def show(ratios):
            rounds = " ".join(f"{x:.0%}" for x in ratios)
            return f"{rounds} -> {statistics.median(ratios):.0%} [{min(ratios):.0%}-{max(ratios):.0%}]"

        print(f"  {fmt:9}  generation {show(tg)};  prompt {show(pp)}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
