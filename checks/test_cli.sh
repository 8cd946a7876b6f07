#!/bin/sh
# checks/test_cli.sh — the command line: --help for every command, errors that name
# the bad option or value, `dath init` twice with one seed gives identical files,
# `dath info` reads them back.
set -u
D=./dath
[ -x "$D" ] || { echo "FAIL: ./dath is not built"; exit 1; }
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
for c in init info step train encode eval baseline mkdemo cost; do
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
echo "$n checks, $fails failed"
[ "$fails" -eq 0 ]
