"""Tutorial, "From a PyTorch model to a pruned ONNX file": a small CNN on the digits."""
# ruff: noqa: I001  (each snippet imports what it introduces, in the tutorial's order)
import os
import tempfile

from digits_setup import X_test, X_train, y_test, y_train

# --- example: train ---
import torch
from torch import nn

torch.manual_seed(0)
model = nn.Sequential(                               # one 8 x 8 grey image in, 10 logits out
    nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(16 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 10))
images = torch.as_tensor(X_train).reshape(-1, 1, 8, 8)
labels = torch.as_tensor(y_train)
optimizer = torch.optim.Adam(model.parameters(), 3e-3)
for epoch in range(30):
    for batch in torch.randperm(len(images)).split(64):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(images[batch]), labels[batch]).backward()
        optimizer.step()
model.eval()
# --- end: train ---

folder = tempfile.mkdtemp()
os.chdir(folder)

# --- example: export ---
torch.onnx.export(model, (torch.zeros(1, 1, 8, 8),), "model.onnx", input_names=["x"],
                  output_names=["logits"], dynamic_shapes=({0: "batch"},), external_data=False)
# --- end: export ---

# --- example: prune ---
import json

import nettrim
from nettrim import adapters

net, provenance = adapters.read("model.onnx")        # checked against onnxruntime's outputs
calibration = X_train.reshape(-1, 1, 8, 8)
pruned, report = nettrim.prune_network(net, calibration, eps_rel=0.05)
print(report.summary())
# --- end: prune ---

# --- example: finetune ---
tuned, tuning = nettrim.finetune(pruned, calibration, y_train, epochs=3,
                                 eval_data=(X_test.reshape(-1, 1, 8, 8), y_test))
print(tuning.summary())
assert tuned.nnz() == pruned.nnz()                   # the zeros stayed zeros
# --- end: finetune ---

# --- example: write ---
adapters.write(tuned, provenance, "pruned.onnx", sparse=True)    # compact initializers
print(os.path.getsize("model.onnx"), "->", os.path.getsize("pruned.onnx"), "bytes")
with open("pruned.json", "w") as f:                               # the report, for 'nettrim report'
    json.dump(report.to_dict(), f)

import onnxruntime
session = onnxruntime.InferenceSession("pruned.onnx", providers=["CPUExecutionProvider"])
logits = session.run(None, {"x": X_test.reshape(-1, 1, 8, 8)})[0]
print("accuracy of pruned.onnx:", (logits.argmax(1) == y_test).mean())
# --- end: write ---

# --- example: torch ---
net, provenance = adapters.read(model, input_shape=(1, 8, 8))    # the module itself
pruned, report = nettrim.prune_network(net, calibration, eps_rel=0.05)
small_model = adapters.write(pruned, provenance)                 # a copy of the module
with torch.no_grad():
    print((small_model(torch.as_tensor(X_test).reshape(-1, 1, 8, 8)).argmax(1).numpy() == y_test).mean())
# --- end: torch ---
