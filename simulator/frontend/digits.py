"""The bundled end-to-end case: a LeNet-style CNN on scikit-learn's digits (no download).

Data: the 1,797 8x8 grey-level digits that ship with scikit-learn (``load_digits``), scaled to
[0, 1], split 70 / 30 stratified with a fixed seed: 1,257 training and 540 held-out images.
Model: conv 1->16 3x3 pad 1, ReLU, maxpool 2, conv 16->32 3x3 pad 1, ReLU, maxpool 2,
fc 128->64, ReLU, fc 64->10 (LeCun et al. 1998 layout, scaled to 8x8 inputs). Training is
Adam, deterministic for the seed, a few seconds on one CPU core. Given a ``cache_dir`` the
weights are cached there, keyed by the training settings and the torch version; without
one nothing is written (the library writes only where it is told: the CLI passes the user
cache directory, ``$APPROXSIM_CACHE_DIR`` or ``$XDG_CACHE_HOME/approxsim``).
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import torch
from torch import nn

from simulator.files import write_atomic
from simulator.frontend.training import Progress, TaskData, noop, single_thread, train

SEED = 0
EPOCHS = 30
LR = 3e-3
CALIBRATION = 128
VERSION = "digits-lenet/1"


class DigitsLeNet(nn.Module):
    """LeNet-style CNN for 1x8x8 inputs, 10 classes (13,706 weights)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(128, 64)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        return self.fc2(self.relu3(self.fc1(self.flatten(x))))


def digits_data(seed: int = SEED) -> TaskData:
    """The digits split (train / held-out) and a calibration batch from the training set."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.3, stratify=y,
                                              random_state=seed)

    def images(a: object) -> torch.Tensor:
        return torch.tensor(a, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16.0

    xt = images(x_tr)
    return TaskData(name="sklearn-digits (8x8, held-out 30 %, stratified, seed 0)",
                    x_test=images(x_te), y_test=torch.tensor(y_te, dtype=torch.long),
                    calibration=xt[:CALIBRATION], x_train=xt,
                    y_train=torch.tensor(y_tr, dtype=torch.long))


def _key() -> str:
    text = f"{VERSION} seed={SEED} epochs={EPOCHS} lr={LR} torch={torch.__version__}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def digits_lenet(progress: Progress = noop, *, cache_dir: Path | None = None,
                 retrain: bool = False) -> tuple[DigitsLeNet, TaskData]:
    """The trained model (from ``cache_dir``, or trained now and cached there) and its data."""
    data = digits_data()
    model = DigitsLeNet()
    path = None if cache_dir is None else Path(cache_dir) / f"digits_lenet_{_key()}.pt"
    if path is not None and path.is_file() and not retrain:
        try:
            model.load_state_dict(torch.load(path, weights_only=True))
            return model.eval(), data
        except (RuntimeError, OSError, EOFError, ValueError):
            pass  # a corrupt cache entry is retrained and replaced
    torch.manual_seed(SEED)
    model = DigitsLeNet()
    assert data.x_train is not None and data.y_train is not None
    with single_thread():
        train(model, data.x_train, data.y_train, epochs=EPOCHS, lr=LR, seed=SEED,
              progress=progress, phase="train digits-lenet")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        torch.save(model.state_dict(), buf)
        write_atomic(path, buf.getvalue())
    return model.eval(), data
