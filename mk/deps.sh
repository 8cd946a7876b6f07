#!/bin/sh
# mk/deps.sh — make sure the Debian packages dath needs are installed.
#   mk/deps.sh build   packages needed to build dath
#   mk/deps.sh test    packages needed by `make test` (and `make demo`)
# As root, missing packages are installed with apt-get. Otherwise the script names
# each missing package and the command that installs it, and fails.
set -u
build="libstb-dev libopenblas-dev libjpeg62-turbo-dev"
test="python3-numpy python3-torch dataset-fashion-mnist gnuplot-nox clang libclang-rt-14-dev"
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
