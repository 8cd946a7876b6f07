#!/bin/sh
# checks/test_faults.sh — dath against the faults and crafted inputs of issue 10 (README,
# "Reliability"), each the way a user meets it; run with the sanitizer build
# (build/san/dath, ASan + UBSan: any report fails) when it is there, else ./dath:
#   - `dath info` on a safetensors header nested 200,000 deep: an error, not a crash;
#   - --resume from checkpoints without 'epoch' or 'step', or with epoch "abc": an error;
#   - kill -9 in the middle of an epoch: every step line written before the kill is in
#     log.jsonl (none waits for the epoch's end), the resume drops the lines after the
#     checkpoint, so each step is logged once; temporaries of killed writers are removed
#     (those of a running process are not);
#   - a JPEG whose Huffman table has 800 codes (it crashed stb_image) in an encode list
#     and an eval --model list: left out, named, everything else encoded;
#   - a list with one readable image: an error, not 0 steps and "j":-nan;
#   - full disks (a tmpfs, when this runs as root): no room for two checkpoints is an
#     error before training, fresh or resumed; `dath encode` leaves no codes without
#     their labels; --cache without room is an error before training.
set -u
D=${DATH:-}
if [ -z "$D" ]; then D=./dath; [ -x build/san/dath ] && D=build/san/dath; fi
[ -x "$D" ] || { echo "FAIL: $D is not built"; exit 1; }
PY=${PYTHON:-python3}
SEEDS=${SEEDS:-build/fuzz/make_seeds}
[ -x "$SEEDS" ] || { echo "FAIL: $SEEDS is not built"; exit 1; }
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
tmp=$(mktemp -d /tmp/dath-faults-XXXXXX)
[ -n "${KEEP:-}" ] || trap 'rm -rf "$tmp"' EXIT
fails=0; n=0
ok()  { n=$((n + 1)); echo "ok   $1"; }
bad() { n=$((n + 1)); fails=$((fails + 1)); echo "FAIL $1"; }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }
# a sanitizer report anywhere in a log fails
clean() { ! grep -q 'ERROR: AddressSanitizer\|runtime error:\|ERROR: LeakSanitizer' "$@"; }
echo "dath: $D"

$D mkdemo --out "$tmp/demo" --train 96 --test 20 --database 40 --seed 4 >/dev/null 2>&1 ||
  { echo "FAIL: dath mkdemo"; exit 1; }
"$SEEDS" "$tmp/seeds" || { echo "FAIL: make_seeds"; exit 1; }
common="--root $tmp/demo --variant dath-n --bits 16 --batch 8 --input-size 64 --lr 1e-4 --seed 3 --device cpu --workers 2"

# --- a header nested 200,000 deep
"$PY" - "$tmp/deep.safetensors" <<'PY'
import struct, sys
h = b'{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"e":' + b"[" * 200000 + b"]" * 200000 + b"}}"
open(sys.argv[1], "wb").write(struct.pack("<Q", len(h)) + h + b"\0\0\0\0")
PY
$D info "$tmp/deep.safetensors" >"$tmp/deep.log" 2>&1
rc=$?
check "info: a header nested 200,000 deep is an error naming the file (exit $rc)" \
  "[ $rc -eq 1 ] && grep -q 'deep.safetensors: malformed safetensors JSON header (values nested deeper than 64' $tmp/deep.log && clean $tmp/deep.log"

# --- kill -9 in epoch 2: the log has epoch 2's steps before the epoch ends
$D train --train "$tmp/demo/train.txt" $common --epochs 2 --out "$tmp/k" >"$tmp/k.log" 2>&1 &
pid=$!
i=0 seen=""
while [ $i -lt 600 ]; do
  if grep -q '"epoch":2,' "$tmp/k/log.jsonl" 2>/dev/null; then
    seen=$(grep -c '"epoch_end":2' "$tmp/k/log.jsonl"); break
  fi
  kill -0 $pid 2>/dev/null || break
  sleep 0.05; i=$((i + 1))
done
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
check "kill -9: epoch 2's step lines were in log.jsonl before epoch 2 ended" "[ '$seen' = 0 ]"
before=$(grep -c '"step":' "$tmp/k/log.jsonl")
# temporaries of killed writers: one of a process that is gone, one of this shell (alive)
gone=$(sh -c 'echo $$')
head -c 1000000 /dev/zero >"$tmp/k/last.safetensors.tmp.$gone"
head -c 1000 /dev/zero >"$tmp/k/model.safetensors.tmp.$gone"
head -c 1000 /dev/zero >"$tmp/k/last.safetensors.tmp.$$"
$D train --resume "$tmp/k" >"$tmp/k2.log" 2>&1
rc=$?
steps=$(sed -n 's/.*"step":\([0-9]*\),.*/\1/p' "$tmp/k/log.jsonl" | tr '\n' ' ')
check "resume after kill -9 finishes (exit $rc)" "[ $rc -eq 0 ] && [ -f $tmp/k/model.safetensors ] && clean $tmp/k2.log"
check "the log holds each step once, 1..24, and each epoch's summary once ($before lines before the resume; steps: $steps)" \
  "[ '$steps' = '$(seq 1 24 | tr '\n' ' ')' ] && [ \$(grep -c '\"epoch_end\":1,' $tmp/k/log.jsonl) = 1 ] && [ \$(grep -c '\"epoch_end\":2,' $tmp/k/log.jsonl) = 1 ]"
check "the resume says how many log lines it dropped" "grep -q 'log.jsonl: dropped [0-9]* lines\? written after the checkpoint' $tmp/k2.log"
check "temporaries of a killed writer removed and named, a running one's kept" \
  "grep -q 'removed 2 temporary files' $tmp/k2.log && [ ! -e $tmp/k/last.safetensors.tmp.$gone ] && [ ! -e $tmp/k/model.safetensors.tmp.$gone ] && [ -e $tmp/k/last.safetensors.tmp.$$ ]"

# --- crafted checkpoints: metadata without epoch/step, epoch "abc"
meta() { # src dst key value|-   (value '-' removes the key)
  "$PY" - "$@" <<'PY'
import json, struct, sys
src, dst, key, val = sys.argv[1:5]
b = open(src, "rb").read()
(n,) = struct.unpack("<Q", b[:8])
h = json.loads(b[8:8 + n])
if val == "-": h["__metadata__"].pop(key)
else: h["__metadata__"][key] = val
s = json.dumps(h, separators=(",", ":")).encode()
s += b" " * (-len(s) % 8)
open(dst, "wb").write(struct.pack("<Q", len(s)) + s + b[8 + n:])
PY
}
for c in "epoch -" "step -" "epoch abc" "batch_in_epoch -3"; do
  set -- $c
  mkdir -p "$tmp/c$1$2"
  meta "$tmp/k/last.safetensors" "$tmp/c$1$2/last.safetensors" "$1" "$2"
  $D train --resume "$tmp/c$1$2" >"$tmp/c.log" 2>&1
  rc=$?
  check "--resume: a checkpoint with $1 '$2' is an error naming the key (exit $rc)" \
    "[ $rc -eq 1 ] && grep -q \"c$1$2/last.safetensors: .*'$1'\" $tmp/c.log && [ ! -e $tmp/c$1$2/log.jsonl ] && clean $tmp/c.log"
done

# --- a JPEG with 800 Huffman codes in an encode list and an eval list
cp "$tmp/seeds/image/dht_800_codes.jpg" "$tmp/demo/dht.jpg"
{ head -n 5 "$tmp/demo/database.txt"; echo "dht.jpg 1 0 0 0 0 0 0 0 0 0"; sed -n '6,10p' "$tmp/demo/database.txt"; } >"$tmp/dht.txt"
$D init --variant dath-n --bits 16 --classes 10 --input-size 64 --seed 1 --out "$tmp/m.safetensors" >/dev/null 2>&1
$D encode --model "$tmp/m.safetensors" --list "$tmp/dht.txt" --root "$tmp/demo" --device cpu --out "$tmp/dht.npy" >"$tmp/e.log" 2>&1
rc=$?
check "encode: the JPEG with 800 Huffman codes is left out and named, 10 codes written (exit $rc)" \
  "[ $rc -eq 0 ] && grep -q 'dht.txt:6: .*dht.jpg: cannot decode (corrupt JPEG' $tmp/e.log && grep -q '^6 dht.jpg' $tmp/dht.npy.skipped.txt && grep -q '10 codes' $tmp/e.log && clean $tmp/e.log"
$D eval --model "$tmp/m.safetensors" --query-list "$tmp/dht.txt" --db-list "$tmp/dht.txt" --root "$tmp/demo" --device cpu >"$tmp/ev.log" 2>&1
rc=$?
check "eval --model: the same list ranks (exit $rc)" "[ $rc -eq 0 ] && grep -q '^MAP@' $tmp/ev.log && clean $tmp/ev.log"

# --- one readable image: no batch can be made
{ head -n 1 "$tmp/demo/train.txt"; echo "missing.jpg 0 1 0 0 0 0 0 0 0 0"; } >"$tmp/one.txt"
$D train --train "$tmp/one.txt" $common --epochs 1 --out "$tmp/one" >"$tmp/one.log" 2>&1
rc=$?
check "a list with one readable image is an error, no model written (exit $rc)" \
  "[ $rc -eq 1 ] && grep -q 'epoch 1 has no batch: 1 of the 2 images' $tmp/one.log && [ ! -e $tmp/one/model.safetensors ] && ! grep -q nan $tmp/one/log.jsonl && clean $tmp/one.log"

# --- full disks: a tmpfs of a given size, in a mount namespace of its own (root only)
mkdir -p "$tmp/probe"
if [ "$(id -u)" = 0 ] && unshare -m sh -c "mount -t tmpfs -o size=64k tmpfs $tmp/probe" 2>/dev/null; then
  ck=$(stat -c %s "$tmp/k/last.safetensors")
  mb=$((ck / 1048576))
  # room for one checkpoint but not two: refused before the first step
  mkdir -p "$tmp/full1"
  unshare -m sh -c "mount -t tmpfs -o size=$((mb + mb / 2))m tmpfs $tmp/full1 &&
    $D train --train $tmp/demo/train.txt $common --epochs 1 --out $tmp/full1/run >$tmp/full1.log 2>&1; echo \$? >$tmp/full1.rc;
    ls -A $tmp/full1/run >$tmp/full1.ls 2>&1"
  check "no room for two checkpoints: an error before training, nothing written ($(cat $tmp/full1.rc))" \
    "[ \"\$(cat $tmp/full1.rc)\" = 1 ] && grep -q 'GiB free, the run needs .* GiB there (two checkpoints' $tmp/full1.log && [ ! -s $tmp/full1.ls ] && clean $tmp/full1.log"
  # a resume whose checkpoint is on a disk without room for the next one
  mkdir -p "$tmp/full2"
  unshare -m sh -c "mount -t tmpfs -o size=$((mb + mb / 2))m tmpfs $tmp/full2 && mkdir $tmp/full2/run &&
    cp $tmp/k/last.safetensors $tmp/full2/run/ && $D train --resume $tmp/full2/run >$tmp/full2.log 2>&1; echo \$? >$tmp/full2.rc"
  check "resume without room for the next checkpoint: an error before training ($(cat $tmp/full2.rc))" \
    "[ \"\$(cat $tmp/full2.rc)\" = 1 ] && grep -q 'which is already there' $tmp/full2.log && ! grep -q resuming $tmp/full2.log && clean $tmp/full2.log"
  # encode: room for the codes but not for the labels as well
  mkdir -p "$tmp/full3"
  unshare -m sh -c "mount -t tmpfs -o size=4k tmpfs $tmp/full3 &&
    $D encode --model $tmp/m.safetensors --list $tmp/demo/database.txt --root $tmp/demo --device cpu \
      --out $tmp/full3/db.npy --labels $tmp/full3/db_labels.npy >$tmp/full3.log 2>&1; echo \$? >$tmp/full3.rc; ls -A $tmp/full3 >$tmp/full3.ls"
  check "encode on a full disk: an error, and no codes without labels (left: $(cat $tmp/full3.ls | tr '\n' ' '))" \
    "[ \"\$(cat $tmp/full3.rc)\" = 1 ] && [ ! -s $tmp/full3.ls ] && grep -q 'nothing written' $tmp/full3.log && clean $tmp/full3.log"
  # --cache without room for the cache file
  mkdir -p "$tmp/full4"
  unshare -m sh -c "mount -t tmpfs -o size=64k tmpfs $tmp/full4 &&
    $D train --train $tmp/demo/train.txt $common --epochs 1 --cache $tmp/full4 --out $tmp/full4run >$tmp/full4.log 2>&1; echo \$? >$tmp/full4.rc"
  check "--cache without room for the file: an error before training ($(cat $tmp/full4.rc))" \
    "[ \"\$(cat $tmp/full4.rc)\" = 1 ] && grep -q 'MiB free, the decoded-image cache file needs' $tmp/full4.log && ! grep -q '\"step\"' $tmp/full4run/log.jsonl 2>/dev/null && clean $tmp/full4.log"
else
  echo "note: not root or no mount namespace: the full-disk checks are not run here"
fi
echo "$n checks, $fails failed"
[ "$fails" -eq 0 ]
