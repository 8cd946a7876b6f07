#!/bin/sh
# checks/test_device_dryrun.sh — the rehearsal of checks/device: every stage's logic on the
# CUDA emulator (emu) at small shapes, the PyTorch peer on the CPU. Two runs:
#   1. the whole dry run (deadline 540 s: the stages' budgets scale with it, so a machine
#      loaded by the other checks still runs every stage; an idle one takes about 280 s,
#      most of it the emulated steps: 114 M parameters whatever the input size): every stage but
#      the sanitizer must pass (the sanitizer passes, or is skipped with the tool's own
#      message); the kernels in three
#      precisions, the step compared tensor by tensor in fp32, tf32 and bf16 and through
#      im2col (the path taken checked from the emulator's counts), graph steps
#      equal to eager ones, the latency, epoch and peak figures in results.csv;
#   2. a short deadline (30 s) with stage b's budget forced to 0: b is named as skipped
#      for its budget, later stages that do not fit are named as skipped or cut, and the
#      script ends within its deadline.
# Both: summary.md holds the table (stage, result, worst error / tolerance, seconds,
# detail) with a row for each of the eight stages, results.csv its header and rows with
# a unit, the GPU's name, the precision and the command; OUTDIR has at most 8 files of at
# most 16 MiB, no deeper than OUTDIR/a/b/file, named with letters, digits, '.', '_', '-';
# the last thing printed is the summary table. `make test` builds what it needs.
set -u
cd "$(dirname "$0")/.." || exit 1
tmp=$(mktemp -d /tmp/dath-device-XXXXXX)
[ -n "${KEEP:-}" ] || trap 'rm -rf "$tmp"' EXIT
fails=0; n=0
ok()  { n=$((n + 1)); echo "ok   $1"; }
bad() { n=$((n + 1)); fails=$((fails + 1)); echo "FAIL $1"; }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }

# files OUT: the limits on what a device run brings back
files() {
  o=$1
  nf=$(find "$o" -type f | wc -l)
  check "$o: at most 8 files ($nf)" "[ $nf -le 8 ] && [ $nf -ge 4 ]"
  big=$(find "$o" -type f -size +16M | wc -l)
  check "$o: no file over 16 MiB" "[ $big -eq 0 ]"
  deep=$(find "$o" -mindepth 4 | wc -l)
  check "$o: nothing deeper than OUTDIR/a/b/file" "[ $deep -eq 0 ]"
  odd=$(find "$o" -mindepth 1 | sed "s|^$o/||" | tr '/' '\n' | grep -c '[^A-Za-z0-9._-]')
  check "$o: names of letters, digits, '.', '_', '-' only" "[ $odd -eq 0 ]"
  for f in summary.md results.csv logs.txt env.txt; do
    check "$o: $f written" "[ -s $o/$f ]"
  done
  check "$o: summary.md has the table header" "grep -q '^| stage | result | worst error / tolerance | s | detail |' $o/summary.md"
  for s in "a build" "b kernels" "c step" "d train" "e encode" "f epoch" "g peak" "h sanitizer"; do
    check "$o: a row for stage '$s'" "grep -q '^| $s | \(pass\|FAIL\|SKIP\|TIMEOUT\) |' $o/summary.md"
  done
  check "$o: results.csv's header" "head -n 1 $o/results.csv | grep -qx 'stage,metric,value,unit,gpu,precision,command'"
  bad_rows=$(tail -n +2 "$o/results.csv" | awk -F, '$4 == "" || $5 !~ /EMULATION/ || $7 == "" { n++ } END { print n + 0 }')
  check "$o: every CSV row has a unit, the GPU's name and a command ($bad_rows without)" "[ $bad_rows -eq 0 ]"
}

# ---- 1. the whole dry run ------------------------------------------------------------------
o1=$tmp/out1
t0=$(date +%s)
DEADLINE_S=540 WORK=$tmp/work1 JOBS=2 checks/device --dry-run "$o1" >"$tmp/run1.log" 2>&1
rc1=$?
dt1=$(( $(date +%s) - t0 ))
sed 's/^/  | /' "$tmp/run1.log" | tail -n 16
check "dry run: exit 0 ($rc1), ${dt1} s" "[ $rc1 -eq 0 ]"
check "dry run: within its 540 s deadline" "[ $dt1 -le 542 ]"
files "$o1"
for s in "a build" "b kernels" "c step" "d train" "e encode" "f epoch" "g peak"; do
  check "dry run: stage '$s' passed" "grep -q '^| $s | pass |' $o1/summary.md"
done
check "dry run: the sanitizer passed or was skipped with the tool's message" \
  "grep -q '^| h sanitizer | pass |' $o1/summary.md || grep -q '^| h sanitizer | SKIP | .*\(refused\|not found\)' $o1/summary.md"
for P in fp32 tf32 bf16; do
  check "dry run: kernels in $P checked, none failed" \
    "grep -q '^b,kernel_tensors_checked,[1-9][0-9]*,count,.*,$P,' $o1/results.csv && grep -q '^b,kernel_tensors_failed,0,count,.*,$P,' $o1/results.csv"
  check "dry run: the step compared in $P" "grep -q '^c,tensors_within_tol,[1-9][0-9]*,count,.*,$P,' $o1/results.csv"
done
check "dry run: the step compared through im2col (--conv im2col), the path checked" \
  "grep -q '^c,tensors_within_tol,[1-9][0-9]*,count,.*,fp32:im2col,' $o1/results.csv && ! grep -q 'the emulator saw the' $o1/summary.md"
check "dry run: worst error / tolerance under 1 for the kernels and the step" \
  "! grep -q '^[bc],worst_err_over_tol,\([1-9][0-9]*\(\.[0-9]*\)\?\|[0-9.]*e+[0-9]*\),' $o1/results.csv"
check "dry run: graph steps bit-identical to eager steps" "grep -q '^| d train | pass | 0 (bit-identical) |' $o1/summary.md"
check "dry run: encoding latency of dath and the peer" \
  "grep -q '^e,dath_ms_per_image_b1,' $o1/results.csv && grep -q '^e,dath_ms_per_image_b2,' $o1/results.csv && grep -q '^e,torch_eager_ms_per_image_b1,' $o1/results.csv"
check "dry run: a warm epoch of dath and the peer, with the ratio" \
  "grep -q '^f,dath_warm_epoch_s,' $o1/results.csv && grep -q '^f,torch_warm_epoch_s,' $o1/results.csv && grep -q '^f,torch_over_dath_epoch,' $o1/results.csv"
check "dry run: a measured peak per precision and the step's share of it" \
  "[ \$(grep -c '^g,measured_peak_tflops,' $o1/results.csv) -eq 3 ] && grep -q '^g,dath_step_of_peak,' $o1/results.csv"
check "dry run: kernels.txt holds the three tables" "[ \$(grep -c '^===== .*--precision' $o1/kernels.txt) -eq 3 ]"
check "dry run: the last output is the summary table" "tail -n 1 $tmp/run1.log | grep -q '^| h sanitizer |'"
check "dry run: big files deleted (work folder under 100 MB)" "[ \$(du -sm $tmp/work1 | cut -f1) -lt 100 ]"

# ---- 2. a short deadline, one budget forced to 0 ----------------------------------------------
o2=$tmp/out2
t0=$(date +%s)
DEADLINE_S=30 BUDGET_b=0 WORK=$tmp/work2 JOBS=2 checks/device --dry-run "$o2" >"$tmp/run2.log" 2>&1
rc2=$?
dt2=$(( $(date +%s) - t0 ))
sed 's/^/  | /' "$tmp/run2.log" | tail -n 12
check "short deadline: ended within 30 s (${dt2} s, exit $rc2)" "[ $dt2 -le 31 ]"
files "$o2"
check "short deadline: stage b named as skipped for its budget of 0" "grep -q '^| b kernels | SKIP | - | 0 | budget 0 (BUDGET_b=0)' $o2/summary.md"
check "short deadline: a stage skipped for lack of time or cut at its limit" \
  "grep -q '| SKIP | - | 0 | does not fit\|| TIMEOUT |' $o2/summary.md"
echo "$n checks, $fails failed"
[ $fails -eq 0 ]
