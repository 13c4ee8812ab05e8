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


def roc_pr_curves(y_true: np.ndarray, scores: np.ndarray) -> tuple[dict, dict]:
    """ROC and precision-recall points for a binary score, or micro-averaged over classes
    (one-vs-rest) for class probabilities: ({fpr, tpr, auc}, {recall, precision, average_precision})."""
    from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve
    from sklearn.preprocessing import label_binarize

    scores = np.asarray(scores, dtype="float64")
    if scores.ndim == 2 and scores.shape[1] > 1:
        truth = label_binarize(y_true, classes=np.arange(scores.shape[1])).ravel()
        scores = scores.ravel()
    else:
        truth, scores = np.asarray(y_true).ravel(), scores.ravel()
    fpr, tpr, _ = roc_curve(truth, scores)
    precision, recall, _ = precision_recall_curve(truth, scores)
    return ({"fpr": fpr, "tpr": tpr, "auc": float(auc(fpr, tpr))},
            {"recall": recall, "precision": precision, "average_precision": float(average_precision_score(truth, scores))})


def roc_pr_png(roc: dict, pr: dict, path: Path, title: str) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(roc["fpr"], roc["tpr"], label=f"AUC {roc['auc']:.4f}")
    left.plot([0, 1], [0, 1], color="grey", linestyle="--")
    left.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    right.plot(pr["recall"], pr["precision"], label=f"average precision {pr['average_precision']:.4f}")
    right.set(xlabel="recall", ylabel="precision", title="precision-recall", ylim=(0, 1.02))
    for ax in (left, right):
        ax.legend(loc="lower right" if ax is left else "lower left")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
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


def reliability_png(confidence: np.ndarray, correct: np.ndarray, path: Path, title: str, bins: int = 10) -> dict:
    """Calibration: accuracy against confidence in quantile bins (each holds about the same number
    of rows, so no bin is a zigzag of one or two); returns the expected calibration error over them."""
    from sklearn.calibration import calibration_curve

    confidence, correct = np.asarray(confidence, dtype="float64"), np.asarray(correct, dtype="float64")
    accuracy, centers = calibration_curve(correct, confidence, n_bins=bins, strategy="quantile")
    # the rows per bin, binned as calibration_curve bins them (empty bins are dropped by both)
    edges = np.percentile(confidence, np.linspace(0, 100, bins + 1))
    counts = np.bincount(np.searchsorted(edges[1:-1], confidence), minlength=bins)
    counts = counts[counts > 0]
    accuracy, centers = accuracy.tolist(), centers.tolist()
    counts = counts.tolist()
    ece = float(sum(n * abs(a - c) for n, a, c in zip(counts, accuracy, centers)) / max(1, len(confidence)))
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="perfectly calibrated")
    ax.plot(centers, accuracy, marker="o", label=f"model (ECE {ece:.3f})")
    ax.set(xlabel="confidence", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1.02), title=title)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return {"expected_calibration_error": ece, "bins": [{"confidence": c, "accuracy": a, "rows": n}
                                                        for c, a, n in zip(centers, accuracy, counts)]}


def gallery_png(images: np.ndarray, captions: list[str], path: Path, title: str, columns: int = 5) -> None:
    """Images in a grid, each with a caption (true / predicted / confidence)."""
    rows = max(1, -(-len(images) // columns))
    # room above each image for a two-line caption, so captions never run into the row above
    fig, axes = plt.subplots(rows, columns, figsize=(2.0 * columns, 2.7 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image, caption in zip(axes.ravel(), images, captions):
        image = np.asarray(image, dtype="float32")
        low, high = float(image.min()), float(image.max())
        image = (image - low) / (high - low) if high > low else np.zeros_like(image)
        ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray" if image.shape[-1] == 1 else None)
        ax.set_title(caption, fontsize=8, pad=3)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def curves_png(curves, path: Path, title: str) -> None:
    """Learning curves per epoch: losses on the left, other metrics (e.g. val_goal) on the right."""
    losses = [c for c in curves.columns if c != "epoch" and "loss" in c]
    others = [c for c in curves.columns if c != "epoch" and c not in losses and c != "learning_rate"]
    fig, axes = plt.subplots(1, 2 if others else 1, figsize=(10 if others else 5.5, 3.6), squeeze=False)
    for ax, names, label in zip(axes[0], (losses, others), ("loss", "metric")):
        for name in names:
            ax.plot(curves["epoch"], curves[name], marker="o", markersize=3, label=name)
        ax.set(xlabel="epoch", ylabel=label)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
