#!/bin/sh
# checks/test_fuzz.sh — a short run of every libFuzzer target (checks/fuzz/, ASan + UBSan):
# FUZZ_TEST_TIME seconds each (default 10), from the seed corpus and a fresh corpus, so a
# regression in a parser of untrusted bytes shows in `make test`. Skips (exit 77) when
# the targets are not built: no clang with libFuzzer (Debian: clang, libclang-rt-14-dev).
set -u
for t in list safetensors npy cache image; do
  [ -x build/fuzz/fuzz_$t ] || { echo "SKIP: build/fuzz/fuzz_$t is not built (needs clang and libFuzzer:" \
                                      "Debian packages clang, libclang-rt-14-dev)"; exit 77; }
done
corpus=$(mktemp -d /tmp/dath-fuzz-corpus-XXXXXX) || exit 1
trap 'rm -rf "$corpus"' EXIT INT TERM
FUZZ_CORPUS=$corpus checks/fuzz/run.sh "${FUZZ_TEST_TIME:-10}"
