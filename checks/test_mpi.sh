#!/bin/sh
# checks/test_mpi.sh — `dath train` as several MPI processes on the CPU backend (issue 14),
# on a small demo set (DATH-N, input 64, batch 16, 96 images: 6 steps an epoch):
#   - 2 and 4 processes train the one-process run: the same steps, the same triplet counts,
#     the first three losses within 1e-5 relative (after that float rounding parts the runs:
#     checks/test_train.sh says why); 2 processes give the threads' (--ranks 2) model bit
#     for bit, and no process decodes the whole list;
#   - --bucket-trace: rank 0's first bucketed step, every bucket started once, in order,
#     before the backward's end;
#   - resume: 4 processes stop at step 3 (--max-steps), 2 resume: steps 1-3 as the
#     uninterrupted 4-process run's, 4-6 within 1e-5, every step logged once;
#   - from copies of that checkpoint: SIGTERM to one process: all stop after the same
#     step, rank 0's checkpoint, exit 0; kill -9 of one process: every process gone and
#     mpirun non-zero within seconds, mpirun's message names the rank, last.safetensors
#     the step-3 checkpoint; one of 4 processes stopped (SIGSTOP, a hang) with
#     --comm-timeout 5: the others stop within the limit and the grace of their asks,
#     naming it as the one that does not answer (and no other), every process gone,
#     last.safetensors the step-3 checkpoint;
#   - the environment bootstrap with the CPU backend: refused (its collectives are MPI's).
# Open MPI runs as root only with --allow-run-as-root; --oversubscribe lets 4 processes
# share this machine's cores; OMP_NUM_THREADS=1 in every run, so that the threads and the
# processes compute alike. Skips without mpirun or a dath built with MPI.
set -u
D=${DATH:-./dath}
[ -x "$D" ] || { echo "FAIL: $D is not built"; exit 1; }
command -v mpirun >/dev/null 2>&1 || { echo "SKIP: no mpirun (Debian: openmpi-bin)"; exit 77; }
ldd "$D" 2>/dev/null | grep -q 'libmpi' || { echo "SKIP: $D was built without MPI"; exit 77; }
export OMP_NUM_THREADS=1
ROOT=""
[ "$(id -u)" = 0 ] && ROOT="--allow-run-as-root"
# every run bounded (a hang is a failure, exit 124, not a stuck make test)
MPI="timeout -k 5 180 mpirun $ROOT --oversubscribe --bind-to none -x OMP_NUM_THREADS"
tmp=$(mktemp -d /tmp/dath-mpi-XXXXXX)
[ -n "${KEEP:-}" ] || trap 'rm -rf "$tmp"' EXIT
fails=0; n=0
ok()  { n=$((n + 1)); echo "ok   $1"; }
bad() { n=$((n + 1)); fails=$((fails + 1)); echo "FAIL $1"; }
check() { if eval "$2"; then ok "$1"; else bad "$1"; return 1; fi; }
# steps: "step j triplets" a line from a log.jsonl
steps() { sed -n 's/.*"step":\([0-9]*\),.*"j":\([^,]*\),.*"triplets":\([0-9]*\),.*/\1 \2 \3/p' "$1"; }
# close A B K FIRST LAST: the steps FIRST..LAST of both files present, their losses within K relative
close() {
  awk -v k="$3" -v f="$4" -v l="$5" 'NR == FNR { a[$1] = $2; next }
    $1 >= f && $1 <= l { m++; if (!($1 in a)) bad++; d = a[$1] - $2; if (d < 0) d = -d; if (d > k * (a[$1] < 0 ? -a[$1] : a[$1])) bad++ }
    END { exit !(m == l - f + 1 && !bad) }' "$1" "$2"
}
# same_triplets A B LAST: steps 1..LAST mined the same number of triplets
same_triplets() {
  awk -v l="$3" 'NR == FNR { t[$1] = $3; next } $1 <= l { m++; if (t[$1] != $3) bad++ } END { exit !(m == l && !bad) }' "$1" "$2"
}
# pid_of LOG R: rank R's pid from its start line
pid_of() { sed -n "s/.*rank $2 of [0-9]* .*pid \([0-9]*\).*/\1/p" "$1" | head -n 1; }
# gone PIDS: none of them runs within 10 s
gone() {
  i=0
  while [ $i -lt 100 ]; do
    alive=0
    for p in $1; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && return 0
    sleep 0.1; i=$((i + 1))
  done
  return 1
}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

$D mkdemo --out "$tmp/demo" --train 96 --test 20 --database 40 --seed 3 >/dev/null 2>&1 ||
  { echo "FAIL: dath mkdemo"; exit 1; }
common="--train $tmp/demo/train.txt --root $tmp/demo --variant dath-n --bits 16 --batch 16 --input-size 64 --lr 1e-4 --seed 9 --device cpu --workers 1"

# --- one process, threads, 2 and 4 processes
$D train $common --epochs 1 --out "$tmp/one" >"$tmp/one.log" 2>&1
steps "$tmp/one/log.jsonl" >"$tmp/one.j"
$D train $common --epochs 2 --ranks 2 --out "$tmp/th2" >"$tmp/th2.log" 2>&1
$MPI -np 2 $D train $common --epochs 2 --out "$tmp/p2" --bucket-trace "$tmp/p2.trace" >"$tmp/p2.log" 2>&1
rc=$?
steps "$tmp/p2/log.jsonl" >"$tmp/p2.j"
check "mpirun -np 2: trains 2 epochs (exit $rc)" "[ $rc -eq 0 ] && [ -f $tmp/p2/model.safetensors ] && [ \$(wc -l <$tmp/p2.j) -eq 12 ]"
check "2 processes: steps 1-6 mine one process's triplets, steps 1-3 its losses (1e-5)" \
  "same_triplets $tmp/one.j $tmp/p2.j 6 && close $tmp/one.j $tmp/p2.j 1e-5 1 3"
check "2 processes give the model of 2 threads (--ranks 2) bit for bit" "cmp -s $tmp/p2/model.safetensors $tmp/th2/model.safetensors"
dec=$(sed -n 's/^dath train: rank \([0-9]*\) decoded \([0-9]*\) of the \([0-9]*\) images.*/\1:\2\/\3/p' "$tmp/p2.log" | sort | tr '\n' ' ')
check "each process decoded only part of the list (rank:decoded/images: $dec)" \
  "[ \$(echo '$dec' | wc -w) -eq 2 ] && echo '$dec' | tr ' ' '\n' | awk -F'[:/]' 'NF == 3 { m++; if (\$2 >= \$3 || \$2 < 48) bad++ } END { exit !(m == 2 && !bad) }'"
check "only rank 0 wrote the log and the progress (one start line, one line a step)" \
  "[ \$(grep -c '\"start_step\"' $tmp/p2/log.jsonl) -eq 1 ] && [ \$(grep -c '^epoch 1/2' $tmp/p2.log) -eq 1 ]"
# the trace: buckets started in order, each once, every one before the backward ends
check "--bucket-trace: rank 0's first bucketed step started every bucket once, in order, before the backward ended" \
  "awk -F'[:,}]' '/\"trace\"/ { for (i = 1; i < NF; i++) if (\$i ~ /\"buckets\"/) nb = \$(i + 1) }
       /\"event\":\"start\"/ { for (i = 1; i < NF; i++) if (\$i ~ /\"bucket\"/) b = \$(i + 1); if (b != next_b || ended) bad++; next_b++ }
       /\"event\":\"backward_end\"/ { ended = 1 }
       END { exit !(nb > 1 && next_b == nb && ended && !bad) }' $tmp/p2.trace"
$MPI -np 4 $D train $common --epochs 1 --out "$tmp/p4" >"$tmp/p4.log" 2>&1
rc=$?
steps "$tmp/p4/log.jsonl" >"$tmp/p4.j"
check "mpirun -np 4: trains an epoch (exit $rc), steps 1-6 mine one process's triplets, steps 1-3 its losses (1e-5)" \
  "[ $rc -eq 0 ] && [ \$(wc -l <$tmp/p4.j) -eq 6 ] && same_triplets $tmp/one.j $tmp/p4.j 6 && close $tmp/one.j $tmp/p4.j 1e-5 1 3"

# --- resume with 2 processes from a checkpoint made by 4 (the later checks start from copies of it)
$MPI -np 4 $D train $common --epochs 1 --max-steps 3 --out "$tmp/r" >"$tmp/r.log" 2>&1
rc=$?
check "4 processes stop at --max-steps 3 with a checkpoint (exit $rc)" "[ $rc -eq 0 ] && [ -f $tmp/r/last.safetensors ] && [ ! -f $tmp/r/model.safetensors ]"
for d in t k h; do cp -r "$tmp/r" "$tmp/$d"; done
cp "$tmp/r/last.safetensors" "$tmp/good"
$MPI -np 2 $D train --resume "$tmp/r" --workers 1 >"$tmp/r2.log" 2>&1
rc=$?
steps "$tmp/r/log.jsonl" >"$tmp/r.j"
check "2 processes resume it to the end (exit $rc): epoch 1, batch 3, step 3" \
  "[ $rc -eq 0 ] && grep -q 'resuming at epoch 1, batch 3, step 3' $tmp/r2.log && grep -q '× 2 processes of 8' $tmp/r2.log && [ -f $tmp/r/model.safetensors ]"
check "the resumed run logs steps 1-6 once each, 1-3 as the uninterrupted 4-process run, 4-6 within 1e-5 of it" \
  "[ \"\$(cut -d' ' -f1 $tmp/r.j | tr '\n' ' ')\" = '$(seq 1 6 | tr '\n' ' ')' ] && close $tmp/p4.j $tmp/r.j 0 1 3 && close $tmp/p4.j $tmp/r.j 1e-5 4 6"

# --- SIGTERM to one process: every one stops after the same step
$MPI -np 2 $D train --resume "$tmp/t" --epochs 50 --workers 1 >"$tmp/t.log" 2>&1 &
mp=$!
i=0; while [ $i -lt 300 ] && ! grep -q '"step":4,' "$tmp/t/log.jsonl" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
kill -TERM "$(pid_of "$tmp/t.log" 1)" 2>/dev/null
wait $mp; rc=$?
last=$(steps "$tmp/t/log.jsonl" | tail -n 1 | cut -d' ' -f1)
check "SIGTERM to rank 1: both stop after step $last with rank 0's checkpoint, exit 0 (exit $rc)" \
  "[ $rc -eq 0 ] && grep -q 'interrupted at step $last' $tmp/t.log && $D info $tmp/t/last.safetensors | grep -q '^meta *step = $last\$'"

# --- kill -9 of one process after the checkpoint of step 3
$MPI -np 2 $D train --resume "$tmp/k" --epochs 3 --workers 1 >"$tmp/k.log" 2>&1 &
mp=$!
i=0; while [ $i -lt 600 ] && ! grep -q '"step":4,' "$tmp/k/log.jsonl" 2>/dev/null; do sleep 0.05; i=$((i + 1)); done
pids="$(pid_of "$tmp/k.log" 0) $(pid_of "$tmp/k.log" 1)"
t0=$(now)
kill -9 "$(pid_of "$tmp/k.log" 1)"
wait $mp; rc=$?
el=$(since "$t0")
check "kill -9 of rank 1: mpirun exits non-zero ($rc) after $el s, every process gone" "[ $rc -ne 0 ] && gone '$pids' && awk -v e=$el 'BEGIN { exit !(e < 30) }'"
check "... the message names rank 1" "grep -q 'process rank 1 .*exited on signal 9' $tmp/k.log"
check "... last.safetensors is the checkpoint of step 3, untouched" "cmp -s $tmp/k/last.safetensors $tmp/good"

# --- one process hangs (SIGSTOP): the others stop within --comm-timeout, naming it
$MPI -np 4 $D train --resume "$tmp/h" --epochs 3 --workers 1 --comm-timeout 5 >"$tmp/h.log" 2>&1 &
mp=$!
i=0; while [ $i -lt 900 ] && ! grep -q '"step":4,' "$tmp/h/log.jsonl" 2>/dev/null; do sleep 0.05; i=$((i + 1)); done
pids=""; for r in 0 1 2 3; do pids="$pids $(pid_of "$tmp/h.log" $r)"; done
t0=$(now)
kill -STOP "$(pid_of "$tmp/h.log" 2)"
wait $mp; rc=$?
el=$(since "$t0")
named=$(grep -c 'for 5 s (--comm-timeout); rank 2 does not answer: died or hangs' "$tmp/h.log")
check "rank 2 of 4 stopped: mpirun exits non-zero ($rc) after $el s (limit 5 s, grace 2.5 s), every process gone" \
  "[ $rc -ne 0 ] && gone '$pids' && awk -v e=$el 'BEGIN { exit !(e >= 5 && e < 25) }'"
check "... $named of the 3 others said rank 2 does not answer, none another rank (at least one before mpirun ended them)" \
  "[ $named -ge 1 ] && ! grep -Eq 'rank [013] does not answer|ranks [0-9, ]* do not answer' $tmp/h.log" ||
  grep -E 'nothing from|stopping|MPI_ABORT|exited|killed' "$tmp/h.log" | sed 's/^/     | /'
check "... last.safetensors is the checkpoint of step 3, untouched" "cmp -s $tmp/h/last.safetensors $tmp/good"

# --- the environment bootstrap and the CPU backend
DATH_WORLD=2 DATH_RANK=0 DATH_LOCAL_RANK=0 DATH_RENDEZVOUS="$tmp/rdv" $D train $common --epochs 1 --out "$tmp/e" >"$tmp/e.log" 2>&1
rc=$?
check "DATH_WORLD=2 on the CPU backend: refused, its collectives are MPI's (exit $rc)" \
  "[ $rc -ne 0 ] && grep -q 'collectives between processes go over MPI' $tmp/e.log"

echo "$n checks, $fails failed"
[ "$fails" -eq 0 ]
