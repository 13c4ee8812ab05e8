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


def augmentation_grid_png(originals: np.ndarray, variants: list[np.ndarray], path: Path, title: str) -> None:
    """One row per image: the original, then each augmented variant (values shown per image, min to max)."""
    rows, cols = len(originals), 1 + len(variants)
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.6 * rows), squeeze=False)
    for r in range(rows):
        for c, batch in enumerate([originals, *variants]):
            image = np.asarray(batch[r], dtype="float32")
            low, high = float(image.min()), float(image.max())
            image = (image - low) / (high - low) if high > low else np.zeros_like(image)
            axes[r][c].imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray" if image.shape[-1] == 1 else None)
            axes[r][c].set_xticks([])
            axes[r][c].set_yticks([])
            if r == 0:
                axes[r][c].set_title("original" if c == 0 else f"augmented {c}", fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
