#!/bin/sh
# checks/demo.sh — `make demo`: the main job on the embedded demo data, on the CPU.
#   1. dath mkdemo: Fashion-MNIST mosaics (multi-label, 10 classes) into demo/
#   2. dath train: DATH (both streams), 16 bits, input 64, on the CPU backend
#   3. dath encode: the query and database lists to packed codes
#   4. dath eval: MAP@all, P@r<=2, curves and plots, beside the MAP of random codes
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
echo "== done: model $out/model.safetensors, training log $out/log.jsonl, curves in $out/curves/"
