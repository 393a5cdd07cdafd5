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

Curve = tuple[Sequence[float], Sequence[float]]  # (epochs, values)


def confusion_matrix_figure(counts: np.ndarray, normalize: bool = False, title: str = "Confusion matrix") -> Figure:
    """Counts (rows: true label, columns: predicted), or each row as a percentage of that class.

    340 x 330 pixels with 8-point numbers: about the width TensorBoard's Time Series shows an
    image at by default (cards of 335 px and up), so it is legible without "Show actual image
    size"; percentages are whole numbers, so they fit a cell.
    """
    counts = np.asarray(counts, dtype=float)
    values = 100 * counts / np.maximum(counts.sum(axis=1, keepdims=True), 1) if normalize else counts
    classes = np.arange(len(counts))
    figure = Figure(figsize=(3.4, 3.3), dpi=100, layout="constrained")
    axes = figure.subplots()
    image = axes.imshow(values, cmap="Blues", vmin=0, vmax=100 if normalize else max(values.max(), 1))
    figure.colorbar(image, ax=axes, label="% of the true class" if normalize else "images", shrink=0.8)
    threshold = values.max() / 2
    for (row, col), value in np.ndenumerate(values):
        if value == 0:
            continue  # empty cells stay blank: the few mistakes stand out
        text = f"{value:.0f}" if normalize else f"{int(value)}"
        axes.text(col, row, text, ha="center", va="center", fontsize=8 if len(text) < 4 else 6,
                  color="white" if value > threshold else "black")
    axes.set(xticks=classes, yticks=classes)
    axes.set_xlabel("predicted", fontsize=9)
    axes.set_ylabel("true", fontsize=9)
    axes.tick_params(labelsize=8, length=2)
    axes.set_title(f"{title}: {'% of each row' if normalize else 'counts'}\n{int(counts.sum())} images", fontsize=9)
    return figure


def confusion_card_figure(counts: np.ndarray, normalize: bool = False, top: int = 8) -> Figure:
    """The confusion matrix as TensorBoard's Time Series shows an image at its default size: 420 x
    210 pixels (a card fits its image into about that), the matrix on the left, and the `top`
    largest confusions as text on the right ("4 → 9   18"), which stay legible where the matrix's
    own numbers cannot."""
    counts = np.asarray(counts, dtype=float)
    values = 100 * counts / np.maximum(counts.sum(axis=1, keepdims=True), 1) if normalize else counts
    figure = Figure(figsize=(4.2, 2.1), dpi=100, layout="constrained")
    matrix, listing = figure.subplots(1, 2, width_ratios=[1, 1])
    matrix.imshow(values, cmap="Blues", vmin=0, vmax=100 if normalize else max(values.max(), 1))
    classes = np.arange(len(counts))
    matrix.set(xticks=classes, yticks=classes)
    matrix.tick_params(labelsize=7, length=0, pad=1)
    matrix.set_xlabel("predicted", fontsize=8, labelpad=1)
    matrix.set_ylabel("true", fontsize=8, labelpad=1)
    off = values.copy()
    np.fill_diagonal(off, 0)
    order = [divmod(int(i), len(counts)) for i in np.argsort(off, axis=None)[::-1][:top] if off.flat[int(i)] > 0]
    unit = "% of true" if normalize else "images"
    lines = [f"{int(counts.sum())} images", f"most confused ({unit}):"]
    lines += [f"  {t} → {p}   {values[t, p]:.0f}" for t, p in order] or ["  none"]
    listing.set_axis_off()
    listing.text(0, 1, "\n".join(lines), va="top", ha="left", fontsize=9, family="monospace", linespacing=1.25,
                 transform=listing.transAxes)
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


def wrong_images_figure(images: Tensor, labels: Tensor, predicted: Tensor, confidence: Tensor, rows: Tensor,
                        per_row: int = 3, title: str = "Most confidently wrong\ntrue → predicted, confidence, CSV line") -> Figure:
    """Wrong images (N, 1, 28, 28) in [0, 1], each captioned "true → predicted" over "confidence,
    line L", L being the image's line in the CSV (row + 2: the header is line 1; a row below 0 has
    no line).

    Three to a row, 110 pixels a cell and 9-point captions: 345 pixels wide, about the width
    TensorBoard's Time Series shows an image at by default, so the captions are legible there; a
    wider grid was shrunk until only "Show actual image size" made them readable.
    """
    count = len(labels)
    columns = per_row  # the same width whatever the count: a caption or title is never cut
    grid_rows = -(-count // columns)
    figure = Figure(figsize=(1.15 * columns, 1.3 * grid_rows + 0.15 + 0.15 * (title.count("\n") + 1)), dpi=100,
                    layout="constrained")
    figure.suptitle(title, fontsize=9)
    cells = np.atleast_1d(figure.subplots(grid_rows, columns, squeeze=False)).ravel()
    for i, axes in enumerate(cells):
        axes.set_axis_off()
        if i >= count:
            continue
        axes.imshow(images[i, 0].float().cpu().numpy(), cmap="gray", vmin=0, vmax=1)
        row = int(rows[i])
        where = f"{float(confidence[i]):.2f}" + (f", line {row + 2}" if row >= 0 else "")
        axes.set_title(f"{int(labels[i])} → {int(predicted[i])}\n{where}", fontsize=9, pad=2, linespacing=1.1)
    return figure
