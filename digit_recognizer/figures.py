"""The run's figures as matplotlib Figures: shared by the TensorBoard callback and `report`.

Plain data in (arrays of counts, curves, image grids), a Figure out; nothing here reads or
writes files, so TensorBoard shows exactly the picture that `report` saves as PNG. Figures are
made without pyplot: no display or backend choice, and nothing to close afterwards.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from torch import Tensor
from torchvision.utils import make_grid

Curve = tuple[Sequence[float], Sequence[float]]  # (epochs, values)


def confusion_matrix_figure(counts: np.ndarray, normalize: bool = False, title: str = "Confusion matrix") -> Figure:
    """Counts (rows: true label, columns: predicted), or each row as a share of that class."""
    counts = np.asarray(counts, dtype=float)
    values = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1) if normalize else counts
    classes = np.arange(len(counts))
    figure = Figure(figsize=(6, 5.5), dpi=100, layout="constrained")
    axes = figure.subplots()
    image = axes.imshow(values, cmap="Blues", vmin=0, vmax=1 if normalize else max(values.max(), 1))
    figure.colorbar(image, ax=axes, label="share of the true class" if normalize else "images")
    threshold = values.max() / 2
    for (row, col), value in np.ndenumerate(values):
        text = f"{value:.2f}" if normalize else f"{int(value)}"
        if normalize and value == 0:
            text = "0"
        axes.text(col, row, text, ha="center", va="center", fontsize=7,
                  color="white" if value > threshold else "black")
    axes.set(xticks=classes, yticks=classes, xlabel="Predicted label", ylabel="True label",
             title=f"{title} ({int(counts.sum())} images)")
    return figure


def curves_figure(loss: Mapping[str, Curve], accuracy: Mapping[str, Curve], title: str = "") -> Figure:
    """Loss and accuracy per epoch, one line per series name (e.g. "training", "validation")."""
    figure = Figure(figsize=(11, 4.5), dpi=100, layout="constrained")
    left, right = figure.subplots(1, 2)
    for axes, series, name in ((left, loss, "Loss"), (right, accuracy, "Accuracy")):
        for label, (epochs, values) in series.items():
            axes.plot(epochs, values, marker="o", markersize=3, label=label)
        axes.set(title=f"{name} per epoch", xlabel="Epoch", ylabel=name.lower())
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
        axes.legend()
    if title:
        figure.suptitle(title)
    return figure


def mistakes_figure(grid: np.ndarray, captions: Sequence[str], nrow: int, cell: int, padding: int) -> Figure:
    """A torchvision make_grid image (H, W) with a caption above each cell."""
    rows = -(-len(captions) // nrow)
    figure = Figure(figsize=(1.3 * nrow, 1.45 * rows + 0.4), dpi=100, layout="constrained")
    axes = figure.subplots()
    axes.imshow(grid, cmap="gray", vmin=0, vmax=1)
    for i, caption in enumerate(captions):
        row, col = divmod(i, nrow)
        axes.text(padding + col * (cell + padding) + cell / 2, padding + row * (cell + padding) - 0.5, caption,
                  ha="center", va="bottom", fontsize=7, color="black",
                  bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5})
    axes.set_axis_off()
    axes.set_title("Most confidently wrong: true → predicted (confidence), line in the CSV", fontsize=9, pad=12)
    return figure


def wrong_images_figure(images: Tensor, labels: Tensor, predicted: Tensor, confidence: Tensor, rows: Tensor,
                        per_row: int) -> Figure:
    """Wrong images (N, 1, 28, 28) in [0, 1], captioned "true→predicted (confidence) line L", L being
    the image's line in the CSV (row + 2: the header is line 1; a row below 0 has no line)."""
    padding = 8  # room for a caption above each image
    grid = make_grid(images.float(), nrow=per_row, padding=padding, pad_value=1.0)
    captions = [f"{t}→{p} ({c:.2f})" + (f" line {r + 2}" if r >= 0 else "")
                for t, p, c, r in zip(labels.tolist(), predicted.tolist(), confidence.tolist(), rows.tolist())]
    return mistakes_figure(grid[0].numpy(), captions, min(per_row, len(captions)), images.shape[-1], padding)
