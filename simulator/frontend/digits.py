"""The bundled end-to-end case: a LeNet-style CNN on scikit-learn's digits (no download).

Data: the 1,797 8x8 grey-level digits that ship with scikit-learn (``load_digits``), scaled to
[0, 1], split 70 / 30 stratified with a fixed seed: 1,257 training and 540 held-out images.
Model: conv 1->16 3x3 pad 1, ReLU, maxpool 2, conv 16->32 3x3 pad 1, ReLU, maxpool 2,
fc 128->64, ReLU, fc 64->10 (LeCun et al. 1998 layout, scaled to 8x8 inputs); variants with
tanh, sigmoid or SiLU units, and a one-block vision transformer (:class:`DigitsViT`), carry
the functions the activation approximations replace (:data:`MODELS`). Training is
Adam, deterministic for the seed, a few seconds on one CPU core. Given a ``cache_dir`` the
weights are cached there, keyed by the training settings and the torch version; without
one nothing is written (the library writes only where it is told: the CLI passes the user
cache directory, ``$APPROXSIM_CACHE_DIR`` or ``$XDG_CACHE_HOME/approxsim``).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
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


#: The activation of each LeNet variant (LeNet-5 itself used scaled tanh units; sigmoid and
#: SiLU variants exercise the activation-function approximations on a trained model).
ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "silu": nn.SiLU}


class DigitsLeNet(nn.Module):
    """LeNet-style CNN for 1x8x8 inputs, 10 classes (13,706 weights); ``act`` names the
    activation after each hidden layer (the modules keep the names ``relu1..3``)."""

    def __init__(self, act: str = "relu") -> None:
        super().__init__()
        unit = ACTIVATIONS[act]
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.relu1 = unit()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.relu2 = unit()
        self.pool2 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(128, 64)
        self.relu3 = unit()
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        return self.fc2(self.relu3(self.fc1(self.flatten(x))))


class DigitsViT(nn.Module):
    """A one-block vision transformer for 1x8x8 inputs (Dosovitskiy et al., ICLR 2021, at toy
    scale): 2x2 patches -> 16 tokens of 32 features plus learned positions; pre-norm
    single-head self-attention (LayerNorm, q / k / v, softmax over the keys, output
    projection) and a GELU MLP (32 -> 64 -> 32), both residual; a final LayerNorm, the token
    mean and a linear classifier (10 classes). It carries every function the approximations
    cover that LeNet does not: layernorm (its rsqrt), softmax (its exp) and GELU."""

    def __init__(self, dim: int = 32) -> None:
        super().__init__()
        self.patch = nn.Conv2d(1, dim, 2, stride=2)
        self.pos = nn.Parameter(torch.zeros(1, 16, dim))
        self.ln1 = nn.LayerNorm(dim)
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.softmax = nn.Softmax(dim=-1)
        self.proj = nn.Linear(dim, dim)
        self.ln2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, 2 * dim)
        self.gelu = nn.GELU()
        self.fc2 = nn.Linear(2 * dim, dim)
        self.ln3 = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 10)
        self.scale = dim ** -0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.patch(x).flatten(2).transpose(1, 2) + self.pos
        a = self.ln1(h)
        att = self.softmax(self.q(a) @ self.k(a).transpose(1, 2) * self.scale)
        h = h + self.proj(att @ self.v(a))
        h = h + self.fc2(self.gelu(self.fc1(self.ln2(h))))
        return self.head(self.ln3(h).mean(dim=1))


def _lenet(act: str) -> Callable[[], nn.Module]:
    return lambda: DigitsLeNet(act)


#: The bundled models: name -> (constructor, training epochs, learning rate); the sigmoid
#: LeNet trains slower (saturating units), the transformer slower still.
MODELS: dict[str, tuple[Callable[[], nn.Module], int, float]] = {
    "digits-lenet": (_lenet("relu"), EPOCHS, LR), "digits-lenet-tanh": (_lenet("tanh"), EPOCHS, LR),
    "digits-lenet-sigmoid": (_lenet("sigmoid"), 60, LR),
    "digits-lenet-silu": (_lenet("silu"), EPOCHS, LR), "digits-vit": (DigitsViT, 60, LR)}


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


def _key(name: str = "digits-lenet", epochs: int = EPOCHS, lr: float = LR) -> str:
    version = VERSION if name == "digits-lenet" else f"{name}/1"
    text = f"{version} seed={SEED} epochs={epochs} lr={lr} torch={torch.__version__}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def digits_model(name: str = "digits-lenet", progress: Progress = noop, *,
                 cache_dir: Path | None = None, retrain: bool = False,
                 epochs: int | None = None) -> tuple[nn.Module, TaskData]:
    """A bundled model (:data:`MODELS`), trained (from ``cache_dir``, or now and cached there)
    on the digits split, and its data. ``epochs`` overrides the model's training epochs
    (tests train shorter; the cache key holds the epochs)."""
    make, default_epochs, lr = MODELS[name]
    n_epochs = default_epochs if epochs is None else epochs
    data = digits_data()
    stem = "digits_lenet" if name == "digits-lenet" else name.replace("-", "_")
    path = None if cache_dir is None else Path(cache_dir) / f"{stem}_{_key(name, n_epochs, lr)}.pt"
    if path is not None and path.is_file() and not retrain:
        model = make()
        try:
            model.load_state_dict(torch.load(path, weights_only=True))
            return model.eval(), data
        except (RuntimeError, OSError, EOFError, ValueError):
            pass  # a corrupt cache entry is retrained and replaced
    torch.manual_seed(SEED)
    model = make()
    assert data.x_train is not None and data.y_train is not None
    with single_thread():
        train(model, data.x_train, data.y_train, epochs=n_epochs, lr=lr, seed=SEED,
              progress=progress, phase=f"train {name}")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        torch.save(model.state_dict(), buf)
        write_atomic(path, buf.getvalue())
    return model.eval(), data


def digits_lenet(progress: Progress = noop, *, cache_dir: Path | None = None,
                 retrain: bool = False) -> tuple[nn.Module, TaskData]:
    """The trained LeNet (from ``cache_dir``, or trained now and cached there) and its data."""
    return digits_model("digits-lenet", progress, cache_dir=cache_dir, retrain=retrain)
