#!/bin/sh
# checks/run.sh — runs every check and prints one line per check and a summary.
#   checks/run.sh BIN...   the compiled checks (build/checks/test_*), then every
#                          checks/test_*.sh and checks/test_*.py
# A check passes with exit 0, is skipped with exit 77 (it prints why), fails otherwise.
# Output of each check goes to build/checks/logs/NAME.log; a failing check's log is shown.
set -u
PYTHON=${PYTHON:-/usr/bin/python3}
export PYTHON
logs=build/checks/logs
mkdir -p "$logs"
pass=0; fail=0; skip=0; failed=""
start=$(date +%s)
for t in "$@" checks/test_*.sh checks/test_*.py; do
  [ -e "$t" ] || continue
  name=$(basename "$t")
  log="$logs/$name.log"
  t0=$(date +%s)
  case "$t" in
    *.py) "$PYTHON" "$t" >"$log" 2>&1 ;;
    *.sh) sh "$t" >"$log" 2>&1 ;;
    *)    "$t" >"$log" 2>&1 ;;
  esac
  rc=$?
  dt=$(( $(date +%s) - t0 ))
  if [ $rc -eq 0 ]; then
    pass=$((pass + 1)); printf 'PASS  %-34s %4ds\n' "$name" "$dt"
  elif [ $rc -eq 77 ]; then
    skip=$((skip + 1)); printf 'SKIP  %-34s %4ds  %s\n' "$name" "$dt" "$(grep -i skip "$log" | tail -n 1)"
  else
    fail=$((fail + 1)); failed="$failed $name"
    printf 'FAIL  %-34s %4ds  (exit %d)\n' "$name" "$dt" "$rc"
    sed 's/^/    | /' "$log" | tail -n 40
  fi
done
echo "checks took $(( $(date +%s) - start ))s"
[ -n "$failed" ] && echo "failed:$failed"
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
