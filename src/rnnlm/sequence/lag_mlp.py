"""The book's small network on p lagged values, trained with Lightning on the squared error."""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from rnnlm import lightning_output  # noqa: F401  (filters what Lightning prints)


class LagMLP(pl.LightningModule):
    """x_t ≈ net(x_{t-p}, ..., x_{t-1}), net = Linear(p, hidden) -> ReLU -> Linear(hidden, 1)."""

    def __init__(self, lags: int, hidden: int = 10, lr: float = 0.01) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.lr = lr
        self.net = nn.Sequential(nn.Linear(lags, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        for layer in self.net:
            if isinstance(layer, nn.Linear):
                nn.init.xavier_uniform_(layer.weight)  # as the book initialises it
                nn.init.zeros_(layer.bias)
        self.history: list[dict[str, float]] = []

    def forward(self, windows: Tensor) -> Tensor:
        return self.net(windows).squeeze(-1)

    def on_train_epoch_start(self) -> None:
        self._squared_error = torch.zeros((), dtype=torch.float64, device=self.device)
        self._seen = 0

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        windows, targets = batch
        loss = F.mse_loss(self(windows), targets)
        self._squared_error += loss.detach().double() * len(targets)
        self._seen += len(targets)
        return loss

    def on_train_epoch_end(self) -> None:
        # Every window weighs the same, whatever the size of the last minibatch.
        self.history.append({"epoch": self.current_epoch + 1,
                             "train_mse": float(self._squared_error) / self._seen})

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr)

    def predict_windows(self, windows: np.ndarray) -> np.ndarray:
        """The Predictor the k-step forecasts call: float64 windows in, float64 values out."""
        with torch.no_grad():
            inputs = torch.tensor(windows, dtype=torch.float32, device=self.device)
            return self(inputs).double().cpu().numpy()


def fit_lag_mlp(windows: np.ndarray, targets: np.ndarray, *, hidden: int, epochs: int,
                batch_size: int, lr: float, seed: int) -> LagMLP:
    """Train on (windows, targets) in a seeded random order; the same seed gives the same net."""
    torch.manual_seed(seed)  # the initial weights
    module = LagMLP(windows.shape[1], hidden, lr)
    data = TensorDataset(torch.tensor(windows, dtype=torch.float32),
                         torch.tensor(targets, dtype=torch.float32))
    loader = DataLoader(data, batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    # A few hundred parameters: a GPU would only add transfers, so this net trains on the CPU,
    # where the seeded weights and order alone make it reproducible (no process-wide
    # `deterministic` switch that would outlive this call).
    trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    trainer.fit(module, loader)
    return module.eval()
