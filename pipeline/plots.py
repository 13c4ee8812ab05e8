"""Pictures for people (PNG via matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def confusion_png(matrix: np.ndarray, classes: list[str], path: Path, title: str) -> None:
    from sklearn.metrics import ConfusionMatrixDisplay

    size = max(4.0, 0.5 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay(matrix, display_labels=classes).plot(ax=ax, colorbar=False, cmap="Blues")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def residuals_png(y_true: np.ndarray, y_pred: np.ndarray, path: Path, title: str) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.scatter(y_true, y_pred, s=10, alpha=0.6)
    low, high = float(min(y_true.min(), y_pred.min())), float(max(y_true.max(), y_pred.max()))
    left.plot([low, high], [low, high], color="grey", linestyle="--")
    left.set(xlabel="true", ylabel="predicted", title=title)
    right.hist(y_pred - y_true, bins=30)
    right.set(xlabel="residual (predicted - true)", ylabel="count", title="residuals")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
