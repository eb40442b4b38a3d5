"""The devnet's AI workload: the int8 MLP on scikit-learn's digits keeps the float model's
accuracy, and its products are shapes the market can carry once padded."""
from __future__ import annotations

import numpy as np

from client.market import split_product
from client.mlp import train
from consensus.params import DEV
from consensus.state import operand_error
from consensus.work import int8_product


def test_int8_model_tracks_the_float_model() -> None:
    model, float_accuracy, x, y = train()
    int8_accuracy = float((model.predict(x, int8_product) == y).mean())
    assert float_accuracy > 0.9 and int8_accuracy >= float_accuracy - 0.03
    assert model.w1.dtype == np.int8 and np.abs(model.w1).max() <= 64 and np.abs(model.w2).max() <= 64
    pieces = split_product((x[:96] * model.X_SCALE).astype(np.int8), model.w1, DEV)
    assert len(pieces) == 1 and operand_error("A", pieces[0].a, DEV) is None
    assert operand_error("B", pieces[0].b, DEV) is None

