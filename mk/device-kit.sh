#!/bin/sh
# mk/device-kit.sh [DIR] — the device kit (`make device-kit`): what a bare GPU machine
# lacks to build dath and its checks, taken from Debian's packages on this machine's
# registry and laid out as a small prefix in DIR/prefix (default DIR: .carry, which git
# ignores):
#   DIR/prefix/include/   cblas.h, openblas_config.h (OpenBLAS), stb/*.h (stb),
#                         jpeglib.h, jconfig.h, jmorecfg.h, jerror.h (libjpeg-turbo)
#   DIR/prefix/lib/       libopenblas.so.0, libgfortran.so.5, libquadmath.so.0,
#                         libjpeg.so.62 — each a plain file named by its soname
#                         (no symbolic links, which a copy to another machine may lose)
#   DIR/prefix/MANIFEST   the packages and versions it came from, and every file's sha256
# The Makefile finds it by itself (DEPS_PREFIX, see its top): where the system lacks one
# of these libraries and .carry/prefix exists, headers and libraries come from there and
# the binaries carry its absolute path as their run path.
#
# Needs apt-get (apt-get download runs as any user; as root the package lists are
# refreshed when a download fails) and dpkg-deb. Static archives, documentation and
# BLAS/LAPACK's reference-named copies are left out; the kit must stay under 64 MiB
# (it is carried to the GPU machine with the working tree) and the script prints its size.
# Exit status: 0, or 1 with the reason.
set -eu
cd "$(dirname "$0")/.."
DIR=${1:-.carry}
PKGS="libopenblas0-pthread libopenblas-pthread-dev libgfortran5 libquadmath0 libstb-dev
      libjpeg62-turbo libjpeg62-turbo-dev"
LIMIT_MIB=64

fail() { echo "device-kit: $*" >&2; exit 1; }
command -v apt-get >/dev/null 2>&1 || fail "apt-get not found (make the kit on a Debian machine)"
command -v dpkg-deb >/dev/null 2>&1 || fail "dpkg-deb not found"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/dath-kit.XXXXXX") || fail "mktemp failed"
trap 'rm -rf "$tmp"' EXIT INT TERM
mkdir "$tmp/debs" "$tmp/root"

# shellcheck disable=SC2086
if ! (cd "$tmp/debs" && apt-get download -q $PKGS >"$tmp/apt.log" 2>&1); then
  if [ "$(id -u)" = 0 ]; then
    echo "device-kit: apt-get download failed; refreshing the package lists"
    apt-get update -qq >/dev/null 2>&1 || fail "apt-get update failed"
    # shellcheck disable=SC2086
    (cd "$tmp/debs" && apt-get download -q $PKGS >"$tmp/apt.log" 2>&1) ||
      { cat "$tmp/apt.log" >&2; fail "apt-get download $PKGS failed"; }
  else
    cat "$tmp/apt.log" >&2
    fail "apt-get download failed (as root, the package lists would be refreshed first)"
  fi
fi
for f in "$tmp"/debs/*.deb; do dpkg-deb -x "$f" "$tmp/root" || fail "cannot unpack $f"; done

R=$tmp/root
U=$R/usr/include
L=$R/usr/lib/x86_64-linux-gnu
new=$DIR/prefix.new.$$
rm -rf "$new"
mkdir -p "$new/include/stb" "$new/lib"
# put SRC DST: a plain copy of what SRC names (links followed), or fail
put() { [ -e "$1" ] || fail "the packages hold no $1"; cp -L "$1" "$2" || fail "cannot copy $1"; }
put "$U/x86_64-linux-gnu/openblas-pthread/cblas.h" "$new/include/"
put "$U/x86_64-linux-gnu/openblas-pthread/openblas_config.h" "$new/include/"
for h in "$U"/stb/*.h; do put "$h" "$new/include/stb/"; done
for h in jpeglib.h jmorecfg.h jerror.h; do put "$U/$h" "$new/include/"; done
put "$U/x86_64-linux-gnu/jconfig.h" "$new/include/"
put "$L/openblas-pthread/libopenblas.so.0" "$new/lib/"
put "$L/libgfortran.so.5" "$new/lib/"
put "$L/libquadmath.so.0" "$new/lib/"
put "$L/libjpeg.so.62" "$new/lib/"

{
  echo "# dath device kit, made $(date -u +%Y-%m-%dT%H:%M:%SZ) by mk/device-kit.sh on $(uname -m)"
  for f in "$tmp"/debs/*.deb; do
    echo "package $(dpkg-deb -f "$f" Package) $(dpkg-deb -f "$f" Version)"
  done
  (cd "$new" && find include lib -type f | LC_ALL=C sort | xargs sha256sum | sed 's/^/sha256 /')
} >"$new/MANIFEST"

rm -rf "$DIR/prefix"
mv "$new" "$DIR/prefix" || fail "cannot move the kit into $DIR/prefix"
kib=$(du -sk "$DIR/prefix" | cut -f1)
mib=$(( (kib + 1023) / 1024 ))
[ "$mib" -lt "$LIMIT_MIB" ] || fail "$DIR/prefix is $mib MiB, over the $LIMIT_MIB MiB a device run carries"
echo "device-kit: $DIR/prefix: $(find "$DIR/prefix" -type f | wc -l) files, $mib MiB (limit $LIMIT_MIB MiB):"
sed -n 's/^package /  /p' "$DIR/prefix/MANIFEST"
