"""Speed and memory of the label-free probe's measures (:mod:`cltt.eval.label_free`).

    python benchmarks/label_free.py                        # 100,000 x 512 features, 1,000 clips
    python benchmarks/label_free.py --frames 20000 --dim 128 --clip-frames 50

Random features in clips (each clip a random walk, so neighbours in time are near), times
0.1 s apart, the default recipe's probe settings (2000 bootstrap rounds, 20 of them for
RankMe, 4096 retrieval queries, 100,000 uniformity pairs, gaps 1, 5 and 30 s). Prints the
seconds of each measure (wall and CPU: on a shared machine the CPU seconds over the cores
used are the better guide), the total, and the peak resident memory of the process (which
includes the features themselves: N x D float32, and the imports).
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np
import torch

from cltt.eval import label_free as lf
from cltt.recipe import load_recipe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--clip-frames", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    clips = np.arange(args.frames) // args.clip_frames
    steps = rng.normal(size=(args.frames, args.dim)).astype(np.float32)
    starts = np.flatnonzero(np.r_[True, clips[1:] != clips[:-1]])
    features = np.cumsum(steps, axis=0)
    del steps
    features -= np.repeat(features[starts] - rng.normal(size=(len(starts), args.dim)).astype(np.float32) * 10,
                          np.diff(np.r_[starts, args.frames]), axis=0)
    times = (np.arange(args.frames) - np.repeat(starts, np.diff(np.r_[starts, args.frames]))) * 0.1
    probe = load_recipe(None, ["probe.task=label_free"]).probe
    config, rounds = probe.label_free, probe.bootstrap_rounds
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.frames:,} frames x {args.dim} in {len(starts):,} clips; {torch.get_num_threads()} threads; "
          f"features {features.nbytes / 2**20:.0f} MiB; resident before {base:.0f} MiB")
    started = time.perf_counter()
    stages = {
        "rankme": lambda: lf.rankme_interval(features, clips, min(rounds, config.rankme_rounds), 0),
        "alignment": lambda: lf.clip_interval(*lf.alignment_values(features, clips), rounds, 0),
        "uniformity": lambda: lf.clip_interval(*lf.uniformity_values(features, clips, config.pairs, 0), rounds, 0),
        "spread": lambda: lf.spread_interval(features, clips, rounds, 0),
        "retrieval": lambda: lf.temporal_retrieval(features, clips, times, config.gaps, config.recall_at,
                                                   np.sort(rng.choice(args.frames, config.queries, replace=False))),
    }
    for name, stage in stages.items():
        begun, cpu = time.perf_counter(), time.process_time()
        stage()
        print(f"  {name:<11} {time.perf_counter() - begun:6.1f} s wall, {time.process_time() - cpu:6.1f} s CPU")
    begun, cpu = time.perf_counter(), time.process_time()
    found = lf.measure(features, clips, times, config, rounds, 0)
    whole, whole_cpu = time.perf_counter() - begun, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  measure() of one source, all of it: {whole:.1f} s wall, {whole_cpu:.1f} s CPU (stages above: "
          f"{begun - started:.1f} s wall); peak resident {peak:.0f} MiB; load average {os.getloadavg()[0]:.1f}")
    print("  " + ", ".join(f"{k} {v[0]:.3f}" for k, v in found.items() if v[0] is not None))


if __name__ == "__main__":
    main()
