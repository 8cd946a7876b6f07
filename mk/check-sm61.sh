#!/bin/sh
# mk/check-sm61.sh — the GTX 1080 Ti build check (`make check-sm61`): compiles every
# kernels/*.cu and host/*.cu for sm_61 with Debian's CUDA 11.8 toolkit
# (/usr/lib/nvidia-cuda-toolkit), whatever CUDA the main build uses.
#
# When that toolkit is missing: as root, Debian's contrib and non-free components are
# enabled in /etc/apt/sources.list.d/dath-nonfree.sources (same URIs and suites as
# /etc/apt/sources.list.d/debian.sources; nvidia-cuda-toolkit is in non-free and some
# of its dependencies are in contrib) and nvidia-cuda-toolkit is installed. Otherwise
# the script says what is missing and fails.
#
# The 11.8 build must see only 11.8's headers (/usr/include from nvidia-cuda-dev), never
# a newer toolkit's in /usr/local (cuda, or include/ linking to it): CPATH and friends
# are cleared, 11.8's headers are put first on the include path, the versions the
# compiler sees are printed, and no file may use a header from under /usr/local.
# Exit status: 0 when every file compiles, 1 otherwise.
set -u
cd "$(dirname "$0")/.."

TK=/usr/lib/nvidia-cuda-toolkit
NVCC=$TK/bin/nvcc
SOURCES=/etc/apt/sources.list.d/debian.sources
EXTRA=/etc/apt/sources.list.d/dath-nonfree.sources

say() { echo "check-sm61: $*"; }
fail() { echo "check-sm61: $*" >&2; exit 1; }

# ---- the toolkit -----------------------------------------------------------------
if [ ! -x "$NVCC" ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    fail "missing $NVCC (Debian package nvidia-cuda-toolkit, in the non-free component;" \
         "its dependencies also need contrib). As root: add 'contrib non-free' to the" \
         "Components of $SOURCES, then apt-get update && apt-get install" \
         "--no-install-recommends nvidia-cuda-toolkit"
  fi
  if [ ! -f "$EXTRA" ]; then
    [ -f "$SOURCES" ] || fail "missing $NVCC, and no $SOURCES to take Debian's mirrors from"
    grep -q '^Components:' "$SOURCES" || fail "$SOURCES has no Components: line"
    say "enabling Debian contrib and non-free in $EXTRA"
    sed 's/^Components:.*/Components: contrib non-free/' "$SOURCES" > "$EXTRA" ||
      fail "cannot write $EXTRA"
  fi
  export DEBIAN_FRONTEND=noninteractive
  say "installing nvidia-cuda-toolkit (CUDA 11.8; large, this takes minutes)"
  apt-get update -qq >/dev/null || fail "apt-get update failed"
  apt-get install -y -qq --no-install-recommends nvidia-cuda-toolkit >/dev/null ||
    fail "apt-get install nvidia-cuda-toolkit failed"
  [ -x "$NVCC" ] || fail "nvidia-cuda-toolkit is installed but $NVCC is not there"
fi

# ---- the host compiler: CUDA 11.8 accepts up to GCC 11 and clang 14 ----------------
# (nvidia-cuda-toolkit depends on one of these; its own g++ wrapper picks among them)
HOSTCXX=""
for c in clang-14 g++-11 clang-13 g++-10 "$TK/bin/g++"; do
  if command -v "$c" >/dev/null 2>&1; then HOSTCXX=$c; break; fi
done
[ -n "$HOSTCXX" ] || fail "no host compiler CUDA 11.8 accepts: install clang-14 or g++-11"

unset CPATH C_INCLUDE_PATH CPLUS_INCLUDE_PATH NVCC_PREPEND_FLAGS NVCC_APPEND_FLAGS
# nvcc calls ptxas, cudafe++, fatbinary by name: Debian's are in /usr/bin, which must
# come before a newer toolkit's bin directory (CUDA 13's ptxas has no sm_61).
PATH=$TK/bin:/usr/bin:/bin:$PATH
export PATH
for t in ptxas cudafe++ fatbinary; do
  v=$("$t" --version 2>&1 | sed -n 's/.*release \([0-9.]*\).*/\1/p')
  [ "$v" = 11.8 ] || fail "$(command -v "$t" || echo "$t: not found") is CUDA '$v', not 11.8"
done
OUT=$(mktemp -d "${TMPDIR:-/tmp}/dath-sm61.XXXXXX") || fail "mktemp failed"
trap 'rm -rf "$OUT"' EXIT INT TERM

# Debian's 11.8 headers live in /usr/include, which the host compiler searches after
# /usr/local/include, where a newer toolkit's headers may be linked (as on machines
# with CUDA in /usr/local/cuda). So the 11.8 packages' entries of /usr/include are
# linked into a directory given with -I, which comes before both.
mkdir "$OUT/inc" || fail "cannot create $OUT/inc"
for p in nvidia-cuda-dev libcub-dev libthrust-dev libcu++-dev; do
  dpkg-query -L "$p" 2>/dev/null | sed -n 's|^/usr/include/\([^/]*\).*|\1|p' | sort -u |
    while read -r e; do
      [ -e "/usr/include/$e" ] && [ ! -e "$OUT/inc/$e" ] && ln -s "/usr/include/$e" "$OUT/inc/$e"
    done
done
[ -e "$OUT/inc/cuda_runtime.h" ] ||
  fail "nvidia-cuda-dev's /usr/include/cuda_runtime.h is missing (reinstall nvidia-cuda-dev)"
FLAGS="-ccbin $HOSTCXX -std=c++17 -O3 -DDATH_CUDA -gencode arch=compute_61,code=sm_61 -I$OUT/inc"

# ---- which CUDA the compiler really sees ---------------------------------------------
cat > "$OUT/probe.cu" <<'EOF'
#include <cuda_runtime.h>
#include <cublas_v2.h>
dath_cudart CUDART_VERSION
dath_cublas CUBLAS_VER_MAJOR CUBLAS_VER_MINOR
EOF
probe=$(nvcc $FLAGS -E "$OUT/probe.cu" 2>&1) || { echo "$probe" >&2; fail "nvcc cannot preprocess"; }
cudart=$(echo "$probe" | sed -n 's/^dath_cudart \([0-9]*\).*/\1/p')
cublas=$(echo "$probe" | sed -n 's/^dath_cublas \([0-9]*\) \([0-9]*\).*/\1.\2/p')
say "nvcc: $(nvcc --version | sed -n 's/.*release \([0-9.]*\).*/\1/p') ($NVCC), host compiler $HOSTCXX," \
    "CUDART_VERSION $cudart, cuBLAS $cublas"
case "$cudart" in
  1108?) ;;
  *) fail "the 11.8 build sees CUDART_VERSION '$cudart': headers from another toolkit" ;;
esac

# ---- every .cu ------------------------------------------------------------------------
files=$(ls kernels/*.cu host/*.cu 2>/dev/null)
[ -n "$files" ] || fail "no .cu files found"
nok=0
nfail=0
for f in $files; do
  o="$OUT/$(echo "$f" | tr '/' '_').o"
  if log=$(nvcc $FLAGS -Xcompiler -Wall -c -o "$o" "$f" 2>&1); then
    deps=$(nvcc $FLAGS -M "$f" 2>/dev/null | tr ' \\' '\n\n' | grep -E '^/usr/local/' || true)
    if [ -n "$deps" ]; then
      echo "FAIL  $f  (used headers of another toolkit: $(echo $deps))"
      nfail=$((nfail + 1))
    elif [ -n "$log" ]; then
      echo "ok    $f  (with warnings)"
      echo "$log" | sed 's/^/      /'
      nok=$((nok + 1))
    else
      echo "ok    $f"
      nok=$((nok + 1))
    fi
  else
    echo "FAIL  $f"
    echo "$log" | sed 's/^/      /'
    nfail=$((nfail + 1))
  fi
done
say "$nok compiled for sm_61, $nfail failed"
[ "$nfail" = 0 ]
