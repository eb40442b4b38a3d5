"""An int8 AI workload for the market (PROTOCOL §6): a small MLP (64-64-10) trained on
scikit-learn's bundled digits data set, with both weight matrices and the activations
quantised to int8 in [−64, 64], so that its inference is two int8 products a job can carry.
``Int8MLP.predict`` takes the product as a function: ``consensus.work.int8_product``, or a
``MarketClient.matmul`` that has the network compute and verify it (scripts/jobstream.py).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

ACT_MAX = 64  # int8 activations in [0, 64]


@dataclass
class Int8MLP:
    """A trained 64-64-10 ReLU MLP with both weight matrices and the activations in [−64, 64]."""

    w1: np.ndarray
    s1: float
    b1: np.ndarray
    w2: np.ndarray
    s2: float
    b2: np.ndarray
    h_scale: float  # hidden activations: h ≈ h_q · h_scale

    X_SCALE = 4  # digits pixels 0..16 → 0..64 exactly

    @classmethod
    def from_float(cls, coefs: list[np.ndarray], intercepts: list[np.ndarray], calibration: np.ndarray) -> "Int8MLP":
        w1, w2 = coefs
        s1, s2 = np.abs(w1).max() / 64, np.abs(w2).max() / 64
        hidden = np.maximum(calibration / 16 @ w1 + intercepts[0], 0)
        return cls(np.round(w1 / s1).astype(np.int8), s1, intercepts[0], np.round(w2 / s2).astype(np.int8), s2,
                   intercepts[1], hidden.max() / ACT_MAX)

    def predict(self, x: np.ndarray, matmul) -> np.ndarray:
        """Class predictions for raw digits rows; ``matmul(A, B)`` is the int8 product (the network)."""
        xq = (x * self.X_SCALE).astype(np.int8)
        pre = matmul(xq, self.w1).astype(np.float64) * (self.s1 / (16 * self.X_SCALE)) + self.b1
        hq = np.clip(np.round(np.maximum(pre, 0) / self.h_scale), 0, ACT_MAX).astype(np.int8)
        logits = matmul(hq, self.w2).astype(np.float64) * (self.h_scale * self.s2) + self.b2
        return logits.argmax(axis=1)


def train() -> tuple[Int8MLP, float, np.ndarray, np.ndarray]:
    """(int8 model, float accuracy, test rows, test labels) on the bundled digits data set."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # it converges well enough for a demo in 300 iterations
        model = MLPClassifier(hidden_layer_sizes=(64,), max_iter=300, random_state=0).fit(x_train / 16, y_train)
    return (Int8MLP.from_float(model.coefs_, model.intercepts_, x_train), model.score(x_test / 16, y_test),
            x_test, y_test)

