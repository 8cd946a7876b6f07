#!/bin/sh
# mk/deps.sh — make sure the Debian packages dath needs are installed.
#   mk/deps.sh build   what building dath needs (`make deps`)
#   mk/deps.sh test    that, and what `make test` and `make demo` need
# As root, missing packages are installed with apt-get. Otherwise the script names
# each missing package and the command that installs it, and fails. `make` alone never
# calls this script: only `make deps`, `make test` and `make demo` do.
#
# A machine needs only a C compiler, make and git (and, as root, apt-get) before
# `make test` or `make demo`; everything else is here. The CUDA toolkit is not a Debian
# package dath installs: it is used where nvcc is found (`make check-sm61` installs
# Debian's CUDA 11.8 for itself).
set -u
# the build: OpenBLAS (the CPU backend's GEMMs), stb (PNG and other formats, resizing,
# writing the demo's images), libjpeg-turbo (JPEG), Open MPI's headers and library (one
# process per GPU, and the CPU backend over processes; the build works without it)
build="libopenblas-dev libstb-dev libjpeg62-turbo-dev libopenmpi-dev"
# the checks and the demo: g++ (the CUDA emulator is C++), Python with numpy and torch
# (the PyTorch comparison, the dump comparisons), the demo's images, gnuplot (plots),
# clang and its libFuzzer runtime (the fuzz targets, checks/fuzz), mpirun (the checks of
# several processes: checks/test_mpi, checks/test_mpi.sh)
test="g++ python3 python3-numpy python3-torch dataset-fashion-mnist gnuplot-nox clang libclang-rt-14-dev openmpi-bin"
case "${1:-build}" in
  build) want="$build" ;;
  test)  want="$build $test" ;;
  *) echo "usage: mk/deps.sh build|test" >&2; exit 2 ;;
esac
missing=""
for p in $want; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "deps: installing Debian packages:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || { echo "deps: apt-get update failed" >&2; exit 1; }
  apt-get install -y -qq --no-install-recommends $missing >/dev/null ||
    { echo "deps: apt-get install$missing failed" >&2; exit 1; }
  exit 0
fi
for p in $missing; do echo "deps: missing Debian package $p" >&2; done
echo "deps: install them with: sudo apt-get install$missing" >&2
exit 1
