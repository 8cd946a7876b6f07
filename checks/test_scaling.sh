#!/bin/sh
# checks/test_scaling.sh — bench_scaling (issue 14's scaling model) runs and its numbers are
# self-consistent (its --check: N=1 is the compute time at efficiency 1, bucketed ≤ serial,
# efficiencies in (0, 1] and never higher on a slower link, the buckets tile the gradients
# and are ready within the backward), for strong scaling of the paper's batch and weak
# scaling of a small per-GPU batch. ~15 s on 2 cores; --bucket-mb 0 must be one bucket, the serial step.
set -u
B=build/bench/bench_scaling
[ -x "$B" ] || { echo "FAIL: $B is not built"; exit 1; }
fails=0
for args in "" "--per-gpu --batch 16 --variant dath-n --bucket-mb 8" "--bucket-mb 0 --batch 32"; do
  echo "\$ $B --check $args"
  $B --check $args || fails=$((fails + 1))
done
echo "$fails of 3 runs failed"
[ "$fails" -eq 0 ]
