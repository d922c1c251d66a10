#!/usr/bin/env bash
# Tutorial, "The command line": run in an empty folder (python save_digits.py writes the files).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
python "$here/save_digits.py"

# --- example: cli ---
nettrim inspect mlp.npz
nettrim prune mlp.npz --calib calib.npy -o pruned.npz --sparsity 0.8
nettrim report pruned.json
nettrim prune mlp.npz --calib calib.npy -o small.npz --eps-rel 0.05 --sparse --checkpoint ck/
nettrim prune mlp.npz --calib calib.npy -o tuned.npz --sparsity 0.9 --finetune 3 --train train.npz --eval test.npz
nettrim prune mlp.npz --calib calib.npy -o p24.npz --method sparsegpt --nm 2:4
nettrim sweep mlp.npz --calib calib.npy --eval test.npz --sparsity 0.5 0.8 0.9 --plot sweep.png
# --- end: cli ---
