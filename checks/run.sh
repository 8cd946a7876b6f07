#!/bin/bash
# checks/run.sh — runs every check and prints one line per check and a summary.
#   checks/run.sh BIN...   the compiled checks (build/checks/test_*), then every
#                          checks/test_*.sh and checks/test_*.py
# A check passes with exit 0, is skipped with exit 77 (it prints why), fails otherwise.
# Output of each check goes to build/checks/logs/NAME.log; a failing check's log is shown.
# CHECK_JOBS checks run at once (default: the number of cores, at most 4), the longest
# first so that the short ones fill in around them; the lines come in the order the
# checks finish, with each one's own time, and the summary at the end. CHECK_JOBS=1
# runs them one after another.
set -u
PYTHON=${PYTHON:-/usr/bin/python3}
export PYTHON
logs=build/checks/logs
mkdir -p "$logs"
jobs=${CHECK_JOBS:-$(nproc 2>/dev/null || echo 1)}
[ "$jobs" -gt 4 ] && jobs=4
[ "$jobs" -ge 1 ] || jobs=1

all=()
for t in "$@" checks/test_*.sh checks/test_*.py; do [ -e "$t" ] && all+=("$t"); done
# the long checks first (their names, as measured on 2 cores), then the rest in order
long="test_torch_step.py test_device_dryrun.sh test_train.sh test_model test_bare_build.sh test_faults.sh test_mpi.sh
      test_features.py test_curves.py test_mpi
      test_fuzz.sh test_files_san test_files test_ranks test_graph"
order=()
for l in $long; do
  for t in "${all[@]}"; do [ "$(basename "$t")" = "$l" ] && order+=("$t"); done
done
for t in "${all[@]}"; do
  case " $(echo $long) " in *" $(basename "$t") "*) ;; *) order+=("$t") ;; esac
done

# run_one CHECK: its log, then its status and seconds in NAME.status
run_one() {
  local t=$1 name log t0 rc
  name=$(basename "$t")
  log="$logs/$name.log"
  t0=$(date +%s)
  case "$t" in
    *.py) "$PYTHON" "$t" >"$log" 2>&1 ;;
    *.sh) sh "$t" >"$log" 2>&1 ;;
    *)    "$t" >"$log" 2>&1 ;;
  esac
  rc=$?
  echo "$rc $(( $(date +%s) - t0 ))" >"$logs/$name.status"
}

pass=0; fail=0; skip=0; failed=""
start=$(date +%s)
report() {   # report CHECK: one line from its status file
  local t=$1 name rc dt
  name=$(basename "$t")
  read -r rc dt <"$logs/$name.status"
  if [ "$rc" -eq 0 ]; then
    pass=$((pass + 1)); printf 'PASS  %-34s %4ds\n' "$name" "$dt"
  elif [ "$rc" -eq 77 ]; then
    skip=$((skip + 1)); printf 'SKIP  %-34s %4ds  %s\n' "$name" "$dt" "$(grep -i skip "$logs/$name.log" | tail -n 1)"
  else
    fail=$((fail + 1)); failed="$failed $name"
    printf 'FAIL  %-34s %4ds  (exit %d)\n' "$name" "$dt" "$rc"
    sed 's/^/    | /' "$logs/$name.log" | tail -n 40
  fi
}

running=()   # the checks running now
# reap: waits for one of them to end, reports every one that has, drops them from running
reap() {
  wait -n 2>/dev/null
  local keep=() r
  for r in "${running[@]}"; do
    if [ -f "$logs/$(basename "$r").status" ]; then report "$r"; else keep+=("$r"); fi
  done
  running=("${keep[@]+"${keep[@]}"}")
}
for t in "${order[@]}"; do
  rm -f "$logs/$(basename "$t").status"
  while [ "${#running[@]}" -ge "$jobs" ]; do reap; done
  run_one "$t" &
  running+=("$t")
done
while [ "${#running[@]}" -gt 0 ]; do reap; done
wait
echo "checks took $(( $(date +%s) - start ))s ($jobs at a time)"
[ -n "$failed" ] && echo "failed:$failed"
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
