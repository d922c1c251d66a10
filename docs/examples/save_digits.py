"""Files for the command-line examples: the digits MLP as .npz and its data (in the current folder)."""
import numpy as np
from digits_setup import X_test, X_train, mlp, y_test, y_train

# --- example: files ---
arrays = {}
for i, (W, b) in enumerate(zip(mlp.coefs_, mlp.intercepts_)):
    arrays[f"W{i}"], arrays[f"b{i}"] = W, b          # every W inputs x outputs
np.savez("mlp.npz", **arrays)
np.save("calib.npy", X_train)                          # calibration inputs, samples first
np.savez("train.npz", X=X_train, y=y_train)
np.savez("test.npz", X=X_test, y=y_test)
# --- end: files ---
