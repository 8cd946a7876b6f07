#!/bin/sh
# checks/test_train.sh — `dath train` end to end on the CPU backend, on a small demo set:
#   - resume: N steps straight equal k steps, a checkpoint, then N−k steps after
#     --resume (the final parameters are bit-identical);
#   - the decoded set kept in backend memory after the first epoch gives the same
#     parameters as host batches (--data-on-device no);
#   - two data-parallel ranks give the one-rank run's losses;
#   - bad images (missing, zero-byte, truncated JPEG, corrupt) are skipped, named and
#     counted; a PNG trains; --strict stops at the first bad one;
#   - a malformed list stops before training, naming the line;
#   - SIGTERM finishes the step, writes a checkpoint and exits cleanly;
#   - a short training run lowers the loss and beats random codes' MAP.
set -u
D=${DATH:-./dath}
[ -x "$D" ] || { echo "FAIL: $D is not built"; exit 1; }
tmp=$(mktemp -d /tmp/dath-train-XXXXXX)
[ -n "${KEEP:-}" ] || trap 'rm -rf "$tmp"' EXIT
fails=0; n=0
ok()  { n=$((n + 1)); echo "ok   $1"; }
bad() { n=$((n + 1)); fails=$((fails + 1)); echo "FAIL $1"; }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }

$D mkdemo --out "$tmp/demo" --train 96 --test 40 --database 200 --seed 3 >/dev/null 2>&1 ||
  { echo "FAIL: dath mkdemo"; exit 1; }
common="--root $tmp/demo --variant dath-n --bits 16 --batch 16 --input-size 64 --lr 1e-4 --seed 9 --device cpu --workers 2"

# --- resume: 12 steps straight = 5 steps + resume 7 (the first checkpoint mid-epoch)
$D train --train "$tmp/demo/train.txt" $common --epochs 2 --out "$tmp/a" >"$tmp/a.log" 2>&1
check "straight run trains 2 epochs" "[ -f $tmp/a/model.safetensors ]"
$D train --train "$tmp/demo/train.txt" $common --epochs 2 --out "$tmp/b" --max-steps 5 >"$tmp/b.log" 2>&1
check "--max-steps writes a checkpoint" "grep -q 'checkpoint' $tmp/b.log && [ -f $tmp/b/last.safetensors ] && [ ! -f $tmp/b/model.safetensors ]"
$D train --resume "$tmp/b" --workers 1 >"$tmp/b2.log" 2>&1
check "--resume continues to the end" "grep -q 'resuming at epoch 1, batch 5, step 5' $tmp/b2.log && [ -f $tmp/b/model.safetensors ]"
check "resumed parameters are bit-identical to the straight run's" "cmp -s $tmp/a/model.safetensors $tmp/b/model.safetensors"
# the per-step losses of the resumed steps equal the straight run's
sed -n 's/.*"step":\([0-9]*\),.*"j":\([^,]*\),.*/\1 \2/p' "$tmp/a/log.jsonl" >"$tmp/a.j"
sed -n 's/.*"step":\([0-9]*\),.*"j":\([^,]*\),.*/\1 \2/p' "$tmp/b/log.jsonl" >"$tmp/b.j"
check "per-step losses match across the resume" "[ -s $tmp/a.j ] && cmp -s $tmp/a.j $tmp/b.j"

# --- the decoded set in backend memory from the second epoch (rows only in the batches)
# gives exactly what host batches give
check "the straight run moved the decoded set to backend memory after epoch 1" "grep -q 'decoded images .* are now in cpu memory' $tmp/a.log"
$D train --train "$tmp/demo/train.txt" $common --epochs 2 --data-on-device no --no-graphs --out "$tmp/h" >"$tmp/h.log" 2>&1
check "--data-on-device no trains without moving the set" "[ -f $tmp/h/model.safetensors ] && ! grep -q 'are now in' $tmp/h.log"
check "set in backend memory and host batches give bit-identical parameters" "cmp -s $tmp/a/model.safetensors $tmp/h/model.safetensors"
$D train --train "$tmp/demo/train.txt" $common --epochs 1 --data-on-device maybe --out "$tmp/h2" >"$tmp/h2.log" 2>&1
check "--data-on-device maybe is refused" "grep -q \"data-on-device 'maybe'\" $tmp/h2.log"

# --- two data-parallel ranks (threads on the CPU) train like one rank on the whole batch:
# the same steps, and the first three losses equal to 1e-5 (after that, at this lr, RMSProp's
# ±lr moves of near-zero gradients let float rounding part the runs: measured 4e-4 at step 5)
$D train --train "$tmp/demo/train.txt" $common --epochs 2 --ranks 2 --out "$tmp/r2" >"$tmp/r2.log" 2>&1
sed -n 's/.*"step":\([0-9]*\),.*"j":\([^,]*\),.*/\1 \2/p' "$tmp/r2/log.jsonl" >"$tmp/r2.j"
check "--ranks 2 trains the same steps, the first three with one rank's losses (relative 1e-5)" \
  "[ -f $tmp/r2/model.safetensors ] && [ -s $tmp/r2.j ] && awk 'NR == FNR { a[\$1] = \$2; next } { n++; d = a[\$1] - \$2; if (d < 0) d = -d; if (!(\$1 in a) || (\$1 <= 3 && d > 1e-5 * a[\$1])) bad++ } END { exit !(n > 0 && !bad && n == length(a)) }' $tmp/a.j $tmp/r2.j"
$D train --train "$tmp/demo/train.txt" $common --epochs 1 --ranks 3 --out "$tmp/r3" >"$tmp/r3.log" 2>&1
check "--ranks 3 with --batch 16 is refused" "grep -q 'ranks 3: .*multiple' $tmp/r3.log"

# --- bad images
cp -r "$tmp/demo" "$tmp/bad"
head -c 0 >"$tmp/bad/empty.jpg"
head -c 700 "$tmp/bad/images/train/000001.jpg" >"$tmp/bad/trunc.jpg"
printf 'this is not an image' >"$tmp/bad/corrupt.jpg"
# a good PNG (stb_image reads it): 48x48 RGB gradient, written with zlib
${PYTHON:-python3} - "$tmp/bad/good.png" <<'PY'
import struct, sys, zlib
w = h = 48
raw = b"".join(b"\0" + bytes(v for x in range(w) for v in (x * 5 % 256, y * 5 % 256, (x + y) * 3 % 256)) for y in range(h))
chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
open(sys.argv[1], "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                              + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
PY
{
  head -n 20 "$tmp/demo/train.txt"
  echo "missing.jpg 1 0 0 0 0 0 0 0 0 0"
  echo "empty.jpg 0 1 0 0 0 0 0 0 0 0"
  echo "trunc.jpg 0 0 1 0 0 0 0 0 0 0"
  echo "corrupt.jpg 0 0 0 1 0 0 0 0 0 0"
  echo "good.png 0 0 0 0 1 0 0 0 0 0"
  sed -n '21,40p' "$tmp/demo/train.txt"
} >"$tmp/bad/list.txt"
$D train --train "$tmp/bad/list.txt" --root "$tmp/bad" --variant dath-n --bits 16 --batch 8 --input-size 64 --epochs 1 --device cpu --out "$tmp/c" >"$tmp/c.log" 2>&1
rc=$?
check "a list with bad images trains" "[ $rc -eq 0 ]"
check "each bad image is named with its line" "grep -q 'list.txt:21' $tmp/c.log && grep -q 'list.txt:22' $tmp/c.log && grep -q 'list.txt:23' $tmp/c.log && grep -q 'list.txt:24' $tmp/c.log"
check "the epoch summary counts exactly 4 skipped" "grep -q 'skipped 4' $tmp/c.log"
check "no good image (the PNG included) is reported bad" "[ -s $tmp/bad/good.png ] && ! grep -q 'list.txt:2[5-9]\|list.txt:1[0-9]:' $tmp/c.log"
$D train --train "$tmp/bad/list.txt" --root "$tmp/bad" --variant dath-n --bits 16 --batch 8 --input-size 64 --epochs 1 --device cpu --strict --out "$tmp/d" >"$tmp/d.log" 2>&1
rc=$?
check "--strict fails on the first bad image, naming it" "[ $rc -ne 0 ] && grep -q 'list.txt:21' $tmp/d.log"

# --- a malformed list stops before training
printf 'a.jpg 0 1\nb.jpg 0 2\n' >"$tmp/m.txt"
$D train --train "$tmp/m.txt" --root "$tmp" --device cpu --out "$tmp/e" >"$tmp/e.log" 2>&1
rc=$?
check "malformed list: error names the line, nothing trains" "[ $rc -ne 0 ] && grep -q 'm.txt:2' $tmp/e.log && [ ! -f $tmp/e/last.safetensors ]"

# --- SIGTERM: finish the step, checkpoint, exit cleanly
$D train --train "$tmp/demo/train.txt" $common --epochs 50 --out "$tmp/f" >"$tmp/f.log" 2>&1 &
pid=$!
i=0
while [ $i -lt 100 ] && ! grep -q '"step":2,' "$tmp/f/log.jsonl" 2>/dev/null; do sleep 0.2; i=$((i + 1)); done
kill -TERM $pid
wait $pid
rc=$?
check "SIGTERM: clean exit with a checkpoint" "[ $rc -eq 0 ] && grep -q interrupted $tmp/f.log && [ -f $tmp/f/last.safetensors ]"
check "SIGTERM: the checkpoint loads" "$D info $tmp/f/last.safetensors | grep -q 'rmsprop     present'"

# --- learning: the loss falls and the codes beat random codes (the demo's class colours
# make the task learnable from scratch in a few dozen steps)
$D mkdemo --out "$tmp/learn" --train 320 --test 60 --database 400 --seed 5 >/dev/null 2>&1
$D train --train "$tmp/learn/train.txt" --root "$tmp/learn" --variant dath-n --bits 16 --batch 32 \
  --input-size 64 --lr 1e-4 --seed 2 --device cpu --workers 2 --epochs 6 --out "$tmp/g" >"$tmp/g.log" 2>&1
first=$(sed -n 's/.*"epoch_end":1,"j":\([^,]*\),.*/\1/p' "$tmp/g/log.jsonl")
last=$(sed -n 's/.*"epoch_end":6,"j":\([^,]*\),.*/\1/p' "$tmp/g/log.jsonl")
echo "     loss: epoch 1 $first, epoch 6 $last"
check "the loss falls over 6 epochs" "[ -n '$first' ] && [ -n '$last' ] && awk -v a='$first' -v b='$last' 'BEGIN { exit !(b < a) }'"
$D eval --model "$tmp/g/model.safetensors" --query-list "$tmp/learn/test.txt" --db-list "$tmp/learn/database.txt" \
  --root "$tmp/learn" --topk 100 --random-baseline --device cpu >"$tmp/g.eval" 2>/dev/null
map=$(sed -n 's/^MAP@100: //p' "$tmp/g.eval")
rnd=$(sed -n 's/^MAP@100 of random codes: //p' "$tmp/g.eval")
echo "     MAP@100 $map, random codes $rnd"
check "MAP@100 beats random codes' by 0.03" "[ -n '$map' ] && [ -n '$rnd' ] && awk -v a='$map' -v b='$rnd' 'BEGIN { exit !(a > b + 0.03) }'"
echo "$n checks, $fails failed"
[ "$fails" -eq 0 ]
