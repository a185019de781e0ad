"""The project's real network: a 64-300-100-10 MLP (LeNet-300-100's shape for 8×8 inputs)
trained in NumPy on scikit-learn's handwritten digits, fixed seed and split."""

import numpy as np

from .model import Mlp
from .train import init_mlp, train

__all__ = ["SIZES", "SEED", "SPARSITY", "BITS", "load_digits_split", "train_digits_mlp"]

SIZES = [64, 300, 100, 10]
SEED = 0
#: The recipe of ``make demo`` and the bench (with retraining): per-layer sparsity as in
#: LeNet-300-100 (the small last layer pruned least), 4-bit sharing (EIE's codebook).
SPARSITY = "fc1=0.93,fc2=0.93,fc3=0.7"
BITS = 4


def load_digits_split(test_fraction: float = 0.2, seed: int = SEED):
    """``(x_train, y_train, x_test, y_test)``: pixels scaled to [0, 1], stratified split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction, random_state=seed,
                                              stratify=y)
    return x_tr, y_tr, x_te, y_te


def train_digits_mlp(x_train, y_train, epochs: int = 60, seed: int = SEED) -> Mlp:
    """The float reference model (deterministic for a given seed), trained with L2
    regularisation as Han et al. did before pruning."""
    model = init_mlp(SIZES, seed=seed)
    return train(model, x_train, y_train, epochs=epochs, lr=1e-3, batch=32, seed=seed,
                 weight_decay=1e-3)
