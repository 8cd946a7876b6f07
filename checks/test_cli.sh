#!/bin/sh
# checks/test_cli.sh — the command line: --help for every command, errors that name
# the bad option or value (numbers are decimal, ranges as the option table says),
# `dath init` twice with one seed gives identical files, `dath info` reads them back.
# DATH=build/san/dath runs it with the sanitizer build (checks/test_san.sh).
set -u
D=${DATH:-./dath}
[ -x "$D" ] || { echo "FAIL: $D is not built"; exit 1; }
tmp=$(mktemp -d /tmp/dath-cli-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fails=0; n=0
ok()   { n=$((n + 1)); echo "ok   $1"; }
bad()  { n=$((n + 1)); fails=$((fails + 1)); echo "FAIL $1"; }
expect() { # name, wanted exit status, pattern in output, command...
  name=$1; want=$2; pat=$3; shift 3
  out=$("$@" 2>&1); rc=$?
  if [ "$rc" -eq "$want" ] && printf '%s' "$out" | grep -q -- "$pat"; then ok "$name"
  else bad "$name (exit $rc, wanted $want; output: $(printf '%s' "$out" | head -n 3))"; fi
}
for c in init info step train encode eval search features baseline mkdemo cost; do
  expect "dath $c --help" 0 "usage: dath $c" $D $c --help
done
expect "dath --help lists commands" 0 "encode" $D --help
expect "unknown command" 2 "unknown command 'frobnicate'" $D frobnicate
expect "unknown option is named" 2 "unknown option '--bitz'" $D init --bitz 3 --classes 2 --out "$tmp/x"
expect "bad value is named" 2 "'sixteen' is not an integer" $D init --bits sixteen --classes 2 --out "$tmp/x"
expect "missing required option" 2 "--out is required" $D init --bits 16 --classes 2
expect "bad variant is named" 2 "--variant 'dath-x'" $D init --variant dath-x --bits 16 --classes 2 --out "$tmp/x"
expect "input size too small" 2 "input size 32" $D init --bits 16 --classes 2 --input-size 32 --out "$tmp/x"
expect "init writes a model" 0 "wrote" $D init --variant dath-s --bits 16 --classes 3 --input-size 64 --seed 5 --out "$tmp/a.safetensors"
$D init --variant dath-s --bits 16 --classes 3 --input-size 64 --seed 5 --out "$tmp/b.safetensors" >/dev/null 2>&1
if cmp -s "$tmp/a.safetensors" "$tmp/b.safetensors"; then ok "init: same seed, identical files"; else bad "init: same seed, identical files"; fi
expect "info reads it back" 0 "variant     dath-s" $D info "$tmp/a.safetensors"
expect "info --tensors lists keys" 0 "pam.attn.query.weight" $D info --tensors "$tmp/a.safetensors"
expect "info on a missing file names it" 1 "$tmp/none.safetensors" $D info "$tmp/none.safetensors"
expect "step: bad --device" 2 "--device 'gpu'" $D step --model "$tmp/a.safetensors" --list /dev/null --dump "$tmp/d" --device gpu
# values the option table refuses before anything runs (issue 10: these were accepted)
printf 'a.jpg 0 1\n' >"$tmp/l.txt"
for bad in "--lr -1:--lr: '-1' must be greater than 0" "--lr 0x10:--lr: '0x10' is not a number" \
           "--workers -5:--workers: '-5' must be 0 or more" "--lr nan:--lr: 'nan' is not a number" \
           "--lr inf:--lr: 'inf' is not a number" "--wd -1e-5:--wd: '-1e-5' must be 0 or more" \
           "--max-megapixels 0:--max-megapixels: '0' must be greater than 0" "--epochs 0:--epochs: '0' must be greater than 0" \
           "--batch 1e2:--batch: '1e2' is not an integer" "--seed -3:--seed: '-3' is not a non-negative integer" \
           "--lr  1e-4:--lr: ' 1e-4' is not a number"; do
  opt=${bad%%:*}; want=${bad#*:}
  case "$opt" in "--lr  1e-4") set -- --lr " 1e-4" ;; *) set -- $opt ;; esac
  expect "train $opt is refused" 2 "$want" $D train --train "$tmp/l.txt" --out "$tmp/never" "$@"
done
expect "encode --batch 0 is refused" 2 "--batch: '0' must be greater than 0" $D encode --model "$tmp/a.safetensors" --list "$tmp/l.txt" --out "$tmp/x.npy" --batch 0
expect "train --help shows ranges" 0 "RMSProp learning rate (default 1e-5; > 0)" $D train --help
if [ -e "$tmp/never" ]; then bad "refused options wrote nothing"; else ok "refused options wrote nothing"; fi
echo "$n checks, $fails failed"
[ "$fails" -eq 0 ]
