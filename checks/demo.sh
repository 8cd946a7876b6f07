#!/bin/sh
# checks/demo.sh — `make demo`: the main job on the embedded demo data, on the CPU.
#   1. dath mkdemo: Fashion-MNIST mosaics (multi-label, 10 classes) into demo/
#   2. dath train: DATH (both streams), 16 bits, input 64, on the CPU backend; the loss
#      curves (run/loss.png) are redrawn at every epoch's end
#   3. dath encode: the query and database lists to packed codes
#   4. dath eval: MAP@all, P@r<=2, curves and plots, beside the MAP of random codes
#   5. dath search: the first queries' top 8 as a table and a contact sheet
#   6. dath features + dath baseline: LSH and ITQ, 16 bits, learned on the fused fc7 of the
#      training images (the trained model's: no ImageNet AlexNet here), applied to the
#      queries' and database's fc7; dath eval --run: DATH's MAP beside theirs, their
#      curves overlaid
# Sizes and epochs are chosen to finish in a few minutes on 2 cores. The losses are the
# paper's (β 1, γ 0.01, margin 5); the learning rate is 1e-4 instead of the paper's 1e-5,
# which assumes ImageNet-pretrained trunks (this trains from scratch). The demo's items are
# painted in their class's colour, which a network trained from scratch can pick up in
# minutes (see README). EPOCHS=N overrides the epochs.
set -eu
D=./dath
out=demo/run
EPOCHS=${EPOCHS:-4}
[ -f demo/train.txt ] || $D mkdemo --out demo
rm -rf "$out"
echo "== training DATH for $EPOCHS epochs on demo/train.txt (CPU backend, input 64, 16 bits)"
$D train --train demo/train.txt --root demo --variant dath --bits 16 --epochs "$EPOCHS" --batch 32 \
  --input-size 64 --lr 1e-4 --seed 1 --device cpu --out "$out"
echo "== encoding the queries and the database"
$D encode --model "$out/model.safetensors" --list demo/test.txt --root demo --device cpu \
  --out "$out/query.npy" --labels "$out/query_labels.npy"
$D encode --model "$out/model.safetensors" --list demo/database.txt --root demo --device cpu \
  --out "$out/db.npy" --labels "$out/db_labels.npy"
echo "== evaluating"
$D eval --query "$out/query.npy" --query-labels "$out/query_labels.npy" --db "$out/db.npy" \
  --db-labels "$out/db_labels.npy" --topk 0 --random-baseline --curves "$out/curves"
echo "== searching: the first 4 queries' top 8 (contact sheet $out/search.png)"
head -n 4 demo/test.txt >"$out/queries.txt"
$D search --model "$out/model.safetensors" --list "$out/queries.txt" --root demo --device cpu \
  --db "$out/db.npy" --db-list demo/database.txt --top 8 --sheet "$out/search.png"
echo "== LSH and ITQ on the model's fc7 features, beside DATH"
for s in train test database; do
  $D features --model "$out/model.safetensors" --list "demo/$s.txt" --root demo --device cpu \
    --out "$out/fc7_$s.npy"
done
for m in lsh itq; do
  $D baseline --method $m --bits 16 --seed 1 --train-features "$out/fc7_train.npy" \
    --features "$out/fc7_database.npy" --out "$out/db_$m.npy" --save-model "$out/$m.safetensors"
  $D baseline --model "$out/$m.safetensors" --features "$out/fc7_test.npy" --out "$out/query_$m.npy"
done
$D eval --topk 0 --curves "$out/compare" \
  --run "dath=$out/query.npy,$out/query_labels.npy,$out/db.npy,$out/db_labels.npy" \
  --run "lsh=$out/query_lsh.npy,$out/query_labels.npy,$out/db_lsh.npy,$out/db_labels.npy" \
  --run "itq=$out/query_itq.npy,$out/query_labels.npy,$out/db_itq.npy,$out/db_labels.npy"
echo "== done: model $out/model.safetensors, training log $out/log.jsonl, loss curves $out/loss.png,"
echo "   curves in $out/curves/, contact sheet $out/search.png, DATH against LSH and ITQ in $out/compare/"
