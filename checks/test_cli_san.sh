#!/bin/sh
# checks/test_cli_san.sh — checks/test_cli.sh with the sanitizer build (build/san/dath,
# -fsanitize=address,undefined; mk/fuzz.mk): every command line of it under ASan and
# UBSan, a report (which aborts the run) failing the check.
set -u
D=build/san/dath
[ -x "$D" ] || { echo "FAIL: $D is not built (make test builds it)"; exit 1; }
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
out=$(DATH=$D sh checks/test_cli.sh 2>&1)
rc=$?
printf '%s\n' "$out"
if printf '%s' "$out" | grep -q 'AddressSanitizer\|runtime error:'; then echo "FAIL: a sanitizer report"; exit 1; fi
exit $rc
