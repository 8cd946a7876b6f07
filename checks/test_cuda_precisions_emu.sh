#!/bin/sh
# checks/test_cuda_precisions_emu.sh — the TF32 and BF16 GEMMs on the CUDA emulator
# (emu; a CPU emulation, not a GPU result):
#   - build/emu/test_emu_gemm: the emulated cuBLAS's arithmetic, bit for bit, under each
#     of its models (DATH_EMU_GEMM = hw, fma, double) and operand conversions
#     (DATH_EMU_TC_ROUND = rn, rna, rz);
#   - checks/cuda_kernels --emu --precision tf32 and bf16 (every kernel family's check;
#     make test runs each at fp32 as test_<family>_cuda_emu), on the default model (sm_90 block FMAs, operands rounded to
#     nearest) and with the operands truncated (DATH_EMU_TC_ROUND=rz: the probe sees it and
#     the tolerances allow the shrink): every GEMM-fed tensor within its fp32 tolerance
#     plus the error band of checks/gemm_error.h, every other op as at fp32;
#   - build/emu/test_linear_cuda_emu with the emulated cuBLASLt declining its matmuls
#     (DATH_EMU_LT_DECLINE=1): the fc forward's fallback passes too.
set -u
G=${DATH_EMU_GEMM_TEST:-build/emu/test_emu_gemm}
K=${DATH_EMU_KERNELS:-checks/cuda_kernels}
[ -x "$G" ] || { echo "FAIL: $G is not built (make test builds it)"; exit 1; }
[ -x build/emu/test_linear_cuda_emu ] || { echo "FAIL: the emulated kernel checks are not built (make test builds them)"; exit 1; }
tmp=$(mktemp -d /tmp/dath-prec-XXXXXX)
[ -n "${KEEP:-}" ] || trap 'rm -rf "$tmp"' EXIT
fails=0; n=0
ok()  { n=$((n + 1)); echo "ok   $1"; }
bad() { n=$((n + 1)); fails=$((fails + 1)); echo "FAIL $1"; }

for m in hw fma double; do
  for r in rn rna rz; do
    if DATH_EMU_GEMM=$m DATH_EMU_TC_ROUND=$r "$G" >"$tmp/gemm-$m-$r.log" 2>&1; then
      ok "emulated cuBLAS, DATH_EMU_GEMM=$m DATH_EMU_TC_ROUND=$r: $(grep 'checks,' "$tmp/gemm-$m-$r.log")"
    else
      bad "emulated cuBLAS, DATH_EMU_GEMM=$m DATH_EMU_TC_ROUND=$r"; grep FAIL "$tmp/gemm-$m-$r.log"
    fi
  done
done

for r in rn rz; do
  for P in tf32 bf16; do
    log="$tmp/kernels-$P-$r.log"
    DATH_EMU_TC_ROUND=$r "$K" --emu --precision $P >"$log" 2>&1
    rc=$?
    if [ $rc -eq 0 ] && grep -q "^precision: $P" "$log" && grep -q "(precision $P)" "$log"; then
      worst=$(grep 'max err/tol' "$log" | sed 's/.*max err\/tol //' | sort -g | tail -n 1)
      ok "CUDA kernels at $P, operands $r: $(awk '/^[0-9]+ checks, [0-9]+ failed/ { c += $1; f += $3 } END { print c " checks, " f " failed" }' "$log") in $(grep -c '^=====' "$log") families; largest err/tol of a GEMM-fed tensor $worst"
    else
      bad "CUDA kernels at $P, operands $r (exit $rc)"; grep -E '^FAIL|^probe' "$log" | head -n 12
    fi
  done
done
# cuBLASLt declining every matmul (DATH_EMU_LT_DECLINE=1): the fc forward's fallback, cuBLAS and
# then the bias pass, must pass the same checks, and launch the bias kernels the epilogue saves
L=build/emu/test_linear_cuda_emu
"$L" >"$tmp/lt.log" 2>&1; lrc=$?
DATH_EMU_LT_DECLINE=1 "$L" >"$tmp/lt-decline.log" 2>&1; drc=$?
launches() { sed -n 's/^emu: \([0-9]*\) kernel launches.*/\1/p' "$1" | tail -n 1; }
l1=$(launches "$tmp/lt.log"); l2=$(launches "$tmp/lt-decline.log")
if [ $lrc -eq 0 ] && [ $drc -eq 0 ] && [ -n "$l1" ] && [ -n "$l2" ] && [ "$l2" -gt "$l1" ]; then
  ok "linear with cuBLASLt's bias epilogue ($l1 kernel launches) and with it declining ($l2: the bias passes): $(grep 'checks,' "$tmp/lt-decline.log")"
else
  bad "linear with cuBLASLt declining (exit $lrc/$drc, kernel launches ${l1:-?} and ${l2:-?})"; grep FAIL "$tmp/lt-decline.log" | head -n 5
fi
echo "$n checks, $fails failed"
[ $fails -eq 0 ]
