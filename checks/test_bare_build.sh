#!/bin/sh
# checks/test_bare_build.sh — the device kit builds dath on a machine without OpenBLAS,
# stb or libjpeg (as the GPU machines are: a CUDA toolkit, a C compiler, Python, no
# package registry), and without Open MPI (so that build is also the one without MPI).
#
# In a private mount namespace (unshare -m) the system's copies of those packages are
# hidden: every file `dpkg -L` lists for them under /usr/include and /usr/lib, and every
# symbolic link there that leads to one (Debian's alternatives for libopenblas.so and
# cblas.h), is covered by an overlay whose upper layer holds whiteouts, so that for the
# compiler, the linker and the loader they do not exist. Nothing is uninstalled; outside
# the namespace nothing changes. There, a copy of the working tree with the kit in
# .carry/prefix is built with plain `make` (the CUDA build for sm_90, as on an H200, with
# the checks' and benchmarks' binaries), and the check fails unless
#   - make found all three libraries and said they came from the kit;
#   - nothing was installed (make never calls apt-get);
#   - every header any object was compiled from is in the tree, the kit, the CUDA toolkit
#     or one of the toolchain's own packages (libc, gcc, libstdc++, linux headers);
#   - ./dath and the checks load libopenblas and libjpeg from the kit (ldd);
#   - two checks that use them run: test_linear (OpenBLAS GEMMs) and test_loader (JPEG,
#     PNG decoding, resizing).
# The kit is .carry/prefix when it exists, else one made by mk/device-kit.sh into
# build/bare/kit (apt-get download). Skips (77) when not root or without unshare/overlay,
# or when no kit can be made (no registry).
set -u
cd "$(dirname "$0")/.." || exit 1
W=$PWD/build/bare
ARCH_BARE=${ARCH_BARE:-90}
JOBS=${JOBS:-2}
# what ./dath must load from the kit
KIT_NEEDED="libopenblas.so.0 libgfortran.so.5 libjpeg.so.62"
skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }

[ "$(id -u)" = 0 ] || skip "not root: a private mount namespace needs root"
command -v unshare >/dev/null 2>&1 || skip "no unshare (util-linux)"
command -v dpkg >/dev/null 2>&1 || skip "not a Debian system (dpkg)"
unshare -m true 2>/dev/null || skip "unshare -m is refused here"

# ---- the kit ---------------------------------------------------------------------------
if [ -f .carry/prefix/MANIFEST ]; then
  KIT=$PWD/.carry/prefix
else
  KIT=$W/kit/prefix
  if [ ! -f "$KIT/MANIFEST" ]; then
    mkdir -p "$W/kit"
    mk/device-kit.sh "$W/kit" >"$W/kit.log" 2>&1 || { cat "$W/kit.log"; skip "no kit: mk/device-kit.sh failed (no registry?)"; }
  fi
fi
echo "kit: $KIT ($(du -sk "$KIT" | cut -f1) KiB)"
sed -n 's/^package /  /p' "$KIT/MANIFEST"

# ---- a copy of the working tree with the kit in .carry/prefix ----------------------------
SRC=$W/src
rm -rf "$SRC"
mkdir -p "$SRC/.carry"
if git rev-parse --git-dir >/dev/null 2>&1; then
  git ls-files -z -c -o --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$SRC" ||
    fail "cannot copy the working tree"
else
  tar --exclude=./build --exclude=./.carry --exclude=./dath -cf - . | tar -xf - -C "$SRC" ||
    fail "cannot copy the tree"
fi
cp -r "$KIT" "$SRC/.carry/prefix" || fail "cannot copy the kit"

# ---- what to hide ------------------------------------------------------------------------
PKGS="libopenblas-dev libopenblas-pthread-dev libopenblas0-pthread libopenblas0 libopenblas64-dev
      libopenblas64-0 libblas-dev libblas3 liblapack-dev liblapack3 libstb-dev libstb0
      libjpeg62-turbo-dev libjpeg62-turbo libjpeg-dev libturbojpeg0 libturbojpeg0-dev
      libgfortran5 libquadmath0 libopenmpi-dev libopenmpi3 openmpi-bin libpmix-dev libpmix2"
HIDE=$W/hide.txt
: >"$HIDE"
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || continue
  dpkg -L "$p" 2>/dev/null | grep -E '^/usr/(include|lib)/' | while read -r f; do
    [ -d "$f" ] && [ ! -L "$f" ] && continue
    [ -e "$f" ] || [ -L "$f" ] || continue
    echo "$f"
  done >>"$HIDE"
done
# the links that lead to a hidden file (update-alternatives' links are not in dpkg -L)
for d in /usr/include /usr/include/x86_64-linux-gnu /usr/lib/x86_64-linux-gnu; do
  for l in "$d"/*; do
    [ -L "$l" ] || continue
    t=$(readlink -f "$l") || continue
    grep -qxF "$t" "$HIDE" && echo "$l"
  done
done >>"$HIDE.links"
cat "$HIDE.links" >>"$HIDE"; rm -f "$HIDE.links"
sort -u -o "$HIDE" "$HIDE"
nhide=$(wc -l <"$HIDE")
[ "$nhide" -gt 0 ] || skip "none of the packages is installed here: nothing to hide (the normal build is the bare build)"
echo "hiding $nhide files of the system's OpenBLAS, stb and libjpeg packages"

# ---- inside the namespace ------------------------------------------------------------------
cat >"$W/inside.sh" <<'EOF'
set -u
W=$1; HIDE=$2; ARCH_BARE=$3; JOBS=$4
mount --make-rprivate / || exit 90
for top in /usr/include /usr/lib; do
  wh=$W/wh$(echo "$top" | tr / _)
  rm -rf "$wh"; mkdir -p "$wh"
  grep "^$top/" "$HIDE" | while read -r f; do
    rel=${f#"$top"/}
    mkdir -p "$wh/$(dirname "$rel")"
    mknod "$wh/$rel" c 0 0 || exit 91
  done
  mount -t overlay overlay -o "lowerdir=$wh:$top" "$top" || exit 92
done
# the proof that they are gone
for f in /usr/include/stb/stb_image.h /usr/include/jpeglib.h /usr/include/x86_64-linux-gnu/cblas.h \
         /usr/lib/x86_64-linux-gnu/libopenblas.so /usr/lib/x86_64-linux-gnu/libjpeg.so; do
  if [ -e "$f" ]; then echo "still visible: $f"; exit 93; fi
done
ldconfig -p 2>/dev/null | grep -q 'libopenblas.so.0 .*=> /usr' && [ -e "$(ldconfig -p | sed -n 's/.*libopenblas.so.0 .*=> //p' | head -n 1)" ] &&
  { echo "libopenblas.so.0 still loadable from the system"; exit 93; }
echo "hidden: /usr/include/stb, cblas.h, jpeglib.h, libopenblas, libjpeg (checked)"
cd "$W/src" || exit 94
if command -v nvcc >/dev/null 2>&1; then A="ARCH=$ARCH_BARE"; else A="CUDA=0"; fi
T=$(ls checks/test_*.c | sed 's|checks/\(.*\)\.c|build/checks/\1|')
B=$(ls bench/bench_*.c | sed 's|bench/\(.*\)\.c|build/bench/\1|')
start=$(date +%s)
# shellcheck disable=SC2086
make -j"$JOBS" $A DEPGEN="-MD -MP" all $T $B >"$W/build.log" 2>&1
rc=$?
echo "build: make -j$JOBS $A all + $(echo $T $B | wc -w) check and bench binaries: exit $rc, $(( $(date +%s) - start )) s"
[ $rc -eq 0 ] || { tail -n 30 "$W/build.log"; exit 95; }
head -n 2 "$W/build.log"
ldd ./dath build/checks/test_linear build/checks/test_loader >"$W/ldd.txt" 2>&1
ldd ./dath >"$W/ldd-dath.txt" 2>&1
build/checks/test_linear >"$W/run.log" 2>&1 || { tail -n 20 "$W/run.log"; exit 96; }
build/checks/test_loader >>"$W/run.log" 2>&1 || { tail -n 20 "$W/run.log"; exit 97; }
./dath --help >/dev/null 2>&1 || exit 98
echo "ran: test_linear, test_loader, dath --help"
exit 0
EOF
unshare -m sh "$W/inside.sh" "$W" "$HIDE" "$ARCH_BARE" "$JOBS"
rc=$?
case $rc in
  0) ;;
  90|91|92) skip "the overlay that hides the packages could not be mounted (exit $rc)" ;;
  93) fail "the system's packages could not be hidden" ;;
  95) fail "the build with the kit failed (log: $W/build.log)" ;;
  *) fail "the namespace's step failed with exit $rc (logs in $W)" ;;
esac

fails=0
ok()  { echo "ok   $1"; }
bad() { echo "FAIL $1"; fails=$((fails + 1)); }
grep -q '^dath build: .*openblas=yes  stb_image=yes  libjpeg=yes  (from the kit .carry/prefix)' "$W/build.log" &&
  ok "make found OpenBLAS, stb and libjpeg in the kit and said so" ||
  { bad "make did not say it used the kit"; head -n 3 "$W/build.log"; }
if grep -q 'apt-get\|deps: installing' "$W/build.log"; then bad "the build called apt-get"; else ok "nothing was installed"; fi

# every header the objects were compiled from: the tree, the kit, the toolkit, or the toolchain
CUDA_DIR=$(command -v nvcc >/dev/null 2>&1 && dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")
find "$SRC/build" -name '*.d' -exec cat {} + | tr ' \\' '\n\n' | sed -n 's/:$//; /^\//p' |
  sort -u >"$W/headers.txt"
outside=$W/outside.txt
: >"$outside"
while read -r h; do
  case "$h" in
    /*) ;;
    *) continue ;;                                   # relative: the tree
  esac
  case "$h" in
    "$SRC"/*) continue ;;
  esac
  r=$(readlink -f "$h" 2>/dev/null || echo "$h")
  case "$r" in
    "$SRC"/*|"$KIT"/*) continue ;;
  esac
  if [ -n "$CUDA_DIR" ]; then case "$r" in "$CUDA_DIR"/*|/usr/local/cuda*) continue ;; esac; fi
  echo "$r"
done <"$W/headers.txt" >"$W/system-headers.txt"
if [ -s "$W/system-headers.txt" ]; then
  # shellcheck disable=SC2046
  dpkg -S $(cat "$W/system-headers.txt") 2>/dev/null | sed 's/: .*//' | tr ',' '\n' | sed 's/ //g' | sort -u >"$W/owners.txt"
  grep -vE '^(libc6-dev|linux-libc-dev|libgcc-[0-9]+-dev|gcc-[0-9]+|libstdc\+\+-[0-9]+-dev|libgomp1|libc6|libgcc-s1)(:amd64)?$' \
    "$W/owners.txt" >"$outside" || true
  # a header no package owns (and not the tree, kit or toolkit) is outside too
  while read -r f; do dpkg -S "$f" >/dev/null 2>&1 || echo "unowned: $f"; done <"$W/system-headers.txt" >>"$outside"
fi
if [ -s "$outside" ]; then
  bad "headers from outside the tree, the kit, the toolkit and the toolchain:"; sed 's/^/    /' "$outside"
else
  ok "every header ($(wc -l <"$W/headers.txt")) is the tree's, the kit's, the toolkit's or the toolchain's ($(tr '\n' ' ' <"$W/owners.txt" 2>/dev/null))"
fi
# every OpenBLAS, libjpeg, libgfortran, libquadmath a binary loads comes from the kit, and
# dath loads the ones it needs (with --as-needed a binary lists only what it uses)
grep -E 'lib(openblas|jpeg|gfortran|quadmath)' "$W/ldd.txt" | grep -v "=> $SRC/\.carry/prefix/lib/" >"$W/ldd-bad.txt"
need_bad=""
for l in $KIT_NEEDED; do
  grep -q "$l => $SRC/\.carry/prefix/lib/" "$W/ldd-dath.txt" || need_bad="$need_bad $l"
done
if grep -q 'not found' "$W/ldd.txt"; then
  bad "a library is not found at run time:"; grep 'not found' "$W/ldd.txt" | sed 's/^/    /'
elif [ -s "$W/ldd-bad.txt" ] || [ -n "$need_bad" ]; then
  bad "libraries not loaded from the kit:$need_bad"; sed 's/^/    /' "$W/ldd-bad.txt"
else
  ok "dath loads$(for l in $KIT_NEEDED; do printf ' %s' "$l"; done) from the kit, and no binary loads one of them from elsewhere"
fi
ok "in the namespace: $(tail -n 1 "$W/run.log" | cut -c1-80) (test_linear, test_loader passed)"
[ $fails -eq 0 ] || exit 1
rm -rf "$SRC" "$W"/wh_*
echo "bare build: passed"
