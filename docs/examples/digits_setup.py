"""The data and model every example of the tutorial starts from (a few seconds)."""
import numpy as np
from sklearn.datasets import load_digits
from sklearn.neural_network import MLPClassifier

digits = load_digits()
X = (digits.data / 16.0).astype(np.float32)      # 1797 images of 8 x 8 pixels, flat, in [0, 1]
y = digits.target
order = np.random.default_rng(0).permutation(len(X))
X_train, y_train = X[order[:1347]], y[order[:1347]]
X_test, y_test = X[order[1347:]], y[order[1347:]]

# A 64-128-64-10 ReLU network (scikit-learn's MLPClassifier uses ReLU by default).
mlp = MLPClassifier((128, 64), max_iter=500, random_state=0).fit(X_train, y_train)
print("test accuracy of the trained network:", mlp.score(X_test, y_test))
