#!/bin/sh
# checks/test_emu_dath.sh — dath's CUDA backend end to end, on the CPU: build/emu/dath_emu is
# dath linked against the CUDA emulator of checks/emu (the real kernels/*.cu code and
# host/backend_cuda.c; cuBLAS a reference GEMM; streams synchronous; graph capture records
# launches and replays them). A CPU emulation, not a GPU result (checks/emu/README.md).
#   - `dath step --update` on "cuda" against the CPU reference: every tensor of the dump
#     (h, y, losses, triplets, every gradient, every parameter after RMSProp) within
#     checks/compare_dumps.py's tolerances (those of checks/gpu); then the same step with
#     the GEMMs at --precision tf32 and bf16 (the emulator's tensor-core model) against
#     the same CPU dump, within compare_dumps.py --precision tf32|bf16;
#   - `dath train` on "cuda" (DATH-N: the host side is what is tested here), 2 epochs:
#     the step captured in a graph and replayed, the decoded set moved to "device" memory
#     after epoch 1, batches through the copy stream and fences; its per-step losses equal, digit for digit, those of the same run
#     with --no-graphs --data-on-device no, and track the CPU run's (compare_dumps losses).
# Here every launch runs once, in one thread order, with host-readable device memory
# (DATH_EMU_SCHEDULES=1, DATH_EMU_PROTECT=0): the race and guard-page checks of the
# emulator are test_cuda_kernels_emu's, at small shapes.
set -u
D=${DATH:-./dath}
E=${DATH_EMU:-build/emu/dath_emu}
PY=${PYTHON:-/usr/bin/python3}
[ -x "$D" ] || { echo "FAIL: $D is not built"; exit 1; }
[ -x "$E" ] || { echo "FAIL: $E is not built (make test builds it)"; exit 1; }
export DATH_EMU_SCHEDULES=1 DATH_EMU_PROTECT=0
tmp=$(mktemp -d /tmp/dath-emu-XXXXXX)
[ -n "${KEEP:-}" ] || trap 'rm -rf "$tmp"' EXIT
fails=0; n=0
ok()  { n=$((n + 1)); echo "ok   $1"; }
bad() { n=$((n + 1)); fails=$((fails + 1)); echo "FAIL $1"; }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }

$D mkdemo --out "$tmp/demo" --train 8 --test 4 --database 8 --seed 2 >/dev/null 2>&1 || { echo "FAIL: dath mkdemo"; exit 1; }
C=$(awk '{ print NF - 1; exit }' "$tmp/demo/train.txt")
head -n 4 "$tmp/demo/train.txt" >"$tmp/b4.txt"
$D init --variant dath --bits 16 --classes "$C" --input-size 64 --seed 4 --out "$tmp/m.st" >/dev/null 2>&1

# --- one step, every tensor
step="step --model $tmp/m.st --list $tmp/b4.txt --root $tmp/demo --no-augment --update --lr 1e-3"
$E $step --device cuda --dump "$tmp/cu.st" >"$tmp/cu.log" 2>&1
$D $step --device cpu --dump "$tmp/cpu.st" >"$tmp/cpu.log" 2>&1
check "the step ran on the emulated CUDA backend" "grep -q 'CPU EMULATION of CUDA' $tmp/cu.log && [ -f $tmp/cu.st ]"
if "$PY" checks/compare_dumps.py "$tmp/cu.st" "$tmp/cpu.st" --lr 1e-3 >"$tmp/cmp.log" 2>&1; then
  ok "emulated CUDA step vs CPU: $(grep 'tensors within' "$tmp/cmp.log")"
else
  bad "emulated CUDA step vs CPU"; grep -E "FAIL|fail" "$tmp/cmp.log" | head -n 10
fi
[ -n "${KEEP:-}" ] || rm -f "$tmp/cu.st"   # ~0.9 GB each: one CUDA dump on disk at a time
for P in tf32 bf16; do
  $E $step --device cuda --precision $P --dump "$tmp/cu-$P.st" >"$tmp/cu-$P.log" 2>&1
  case $P in tf32) want="GEMMs fp32 0, tf32 [1-9][0-9]*, bf16 0" ;; *) want="GEMMs fp32 0, tf32 0, bf16 [1-9]" ;; esac
  check "the $P step's GEMMs all ran at $P" "grep -q '$want' $tmp/cu-$P.log"
  if "$PY" checks/compare_dumps.py "$tmp/cu-$P.st" "$tmp/cpu.st" --lr 1e-3 --precision $P \
       >"$tmp/cmp-$P.log" 2>&1; then
    ok "emulated CUDA step at $P vs CPU: $(grep 'tensors within' "$tmp/cmp-$P.log")"
  else
    bad "emulated CUDA step at $P vs CPU"; grep -E "FAIL|fail|rror" "$tmp/cmp-$P.log" "$tmp/cu-$P.log" | head -n 10
  fi
  [ -n "${KEEP:-}" ] || rm -f "$tmp/cu-$P.st"
done

# --- training: graphs, the set on the device, the copy stream
train="train --train $tmp/demo/train.txt --root $tmp/demo --variant dath-n --bits 16 --batch 4 --input-size 64 --epochs 2 --seed 5 --workers 2"
$E $train --device cuda --out "$tmp/g" >"$tmp/g.log" 2>&1
$E $train --device cuda --no-graphs --data-on-device no --out "$tmp/e" >"$tmp/e.log" 2>&1
$D $train --device cpu --out "$tmp/c" >"$tmp/c.log" 2>&1
check "graphs: 3 of 4 steps replayed from one captured graph" "grep -q '4 steps in .*3 from 1 CUDA graph)' $tmp/g.log"
check "the decoded set moved to device memory after epoch 1" "grep -q 'are now in cuda memory' $tmp/g.log"
sed -n 's/.*"step":\([0-9]*\),.*"j1":\([^,]*\),"j2":\([^,]*\),"j3":\([^,]*\),.*/\1 \2 \3 \4/p' "$tmp/g/log.jsonl" >"$tmp/g.j"
sed -n 's/.*"step":\([0-9]*\),.*"j1":\([^,]*\),"j2":\([^,]*\),"j3":\([^,]*\),.*/\1 \2 \3 \4/p' "$tmp/e/log.jsonl" >"$tmp/e.j"
check "graph + resident-set steps = eager steps from host batches, digit for digit" "[ \$(wc -l <$tmp/g.j) -eq 4 ] && cmp -s $tmp/g.j $tmp/e.j"
if "$PY" checks/compare_dumps.py losses "$tmp/g/log.jsonl" "$tmp/c/log.jsonl" --steps 4 >"$tmp/l.log" 2>&1; then
  ok "emulated CUDA training tracks the CPU's losses: $(tail -n 1 "$tmp/l.log")"
else
  bad "emulated CUDA training vs CPU losses"; tail -n 5 "$tmp/l.log"
fi
echo "$n checks, $fails failed"
[ $fails -eq 0 ]
