#!/bin/sh
# checks/fuzz/run.sh SECONDS [TARGET...] — runs each libFuzzer target (build/fuzz/fuzz_TARGET;
# default: all five) for SECONDS, one after the other, and prints a line per target:
#   list          123456 runs in 10 s (12345/s), corpus 210 inputs, no finding
# Inputs: the seed corpus build/fuzz/seeds/TARGET (written first by build/fuzz/make_seeds),
# and the corpus $FUZZ_CORPUS/TARGET (default build/fuzz/corpus: it grows across runs),
# into which new inputs are written. Inputs are at most MAX_LEN bytes (per target below:
# small images decode fast). A crash, a sanitizer report, a broken promise (fuzz_fail),
# a leak, a timeout (10 s an input) or an out-of-memory (2 GB) is a finding: the input
# is saved as build/fuzz/findings/TARGET-*, the log's end is shown, and the exit status
# is 1. Logs: build/fuzz/logs/TARGET.log. The files the parsers read are written to a
# directory in /dev/shm (a tmpfs; else $TMPDIR or /tmp), removed at the end.
set -u
cd "$(dirname "$0")/../.."
T=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-list safetensors npy cache image}
F=build/fuzz
corpus=${FUZZ_CORPUS:-$F/corpus}
mkdir -p "$F/logs" "$F/findings" || exit 1
rm -rf "$F/seeds"
"$F/make_seeds" "$F/seeds" || { echo "fuzz: make_seeds failed"; exit 1; }
# the parsers read their input from a file: on a tmpfs (/dev/shm) a run is 10 times faster
base=${FUZZ_TMPDIR:-/dev/shm}
[ -d "$base" ] && [ -w "$base" ] || base=${TMPDIR:-/tmp}
tmp=$(mktemp -d "$base/dath-fuzz-run-XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
found=0
for t in $targets; do
  case $t in
    list) len=4096 ;; safetensors) len=4096 ;; npy) len=1024 ;; cache) len=16384 ;; image) len=8192 ;;
    *) echo "fuzz: unknown target '$t'"; exit 2 ;;
  esac
  bin=$F/fuzz_$t
  [ -x "$bin" ] || { echo "fuzz: $bin is not built"; exit 1; }
  mkdir -p "$corpus/$t"
  log=$F/logs/$t.log
  t0=$(date +%s)
  TMPDIR=$tmp "$bin" -max_total_time="$T" -max_len=$len -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$F/findings/$t-" "$corpus/$t" "$F/seeds/$t" >"$log" 2>&1
  rc=$?
  dt=$(( $(date +%s) - t0 ))
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  size=$(ls "$corpus/$t" | wc -l)
  if [ $rc -eq 0 ]; then
    printf '%-12s %10s runs in %4d s (%s/s), corpus %s inputs, no finding\n' "$t" "${runs:-?}" "$dt" \
      "$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)" "$size"
  else
    found=1
    printf '%-12s FINDING after %s runs (exit %d): %s\n' "$t" "${runs:-?}" "$rc" \
      "$(grep -o "$F/findings/$t-[^ ]*" "$log" | tail -n 1)"
    grep -E 'ERROR|SUMMARY|broken promise|#[0-9]+ 0x' "$log" | head -n 20 | sed 's/^/    | /'
  fi
done
exit $found
