"""`genie plot`: the loss terms, the learning rate and the dev headline F1 of one or more runs
against optimizer steps (epochs on the top axis), from their metrics.jsonl, on one figure
(matplotlib: the `plot` extra).

Each run has one colour and each loss term (or dev task) one line style, so several runs stay
apart. Per-step losses are noisy: they are drawn smoothed, the raw values faint behind."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genie.errors import GenieError
from genie.io import atomic_write
from genie.records import read_lines
from genie.training.metrics_log import FILE

STYLES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3)))
# The EMA averages over about this share of a run's steps (at least 10): long runs need more
# smoothing than short ones to show their trend.
SMOOTHING_SHARE = 1 / 50


def _line(row: object) -> dict:
    if not isinstance(row, dict) or not isinstance(row.get("step"), int):
        raise ValueError("not a metrics line (an object with an integer step)")
    return row


def smooth(values: list[float]) -> list[float]:
    """Exponential moving average, debiased as TensorBoard's (the first values are not pulled to 0)."""
    keep = 1 - 1 / max(10.0, len(values) * SMOOTHING_SHARE)
    average, out = 0.0, []
    for n, value in enumerate(values, 1):
        average = keep * average + (1 - keep) * value
        out.append(average / (1 - keep ** n))
    return out


def plot_runs(runs: list[Path], out: Path):
    """Draw the runs (each labelled by its folder as given) and save a PNG to `out`; returns the
    figure: its axes are the loss terms, the learning rate and each task's dev F1."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        raise GenieError("genie plot needs matplotlib: pip install -e \".[plot]\" (make install has it)") from None
    figure, (losses, rates, dev) = plt.subplots(1, 3, figsize=(16, 4.8), layout="constrained", sharex=True,
                                                width_ratios=(3, 2, 2))
    terms: dict[str, object] = {"loss": "-"}  # a loss term -> its line style, the same in every run
    tasks: dict[str, object] = {}  # a dev task -> its line style
    epochs = []  # the first run's (step, epoch) at each epoch's end, for the top axis
    for i, run in enumerate(runs):
        color = f"C{i % 10}"  # matplotlib's ten default colours
        rows = read_lines(run / FILE, _line)
        steps = [row for row in rows if "loss" in row]
        x = [row["step"] for row in steps]
        drawn = []
        for term in sorted((key for key in (steps[0] if steps else {}) if key.endswith("loss")),
                           key=lambda key: key == "loss"):  # the total last
            raw = [row[term] for row in steps]
            # not drawn: a term the run does not have (grounding, for MNER), or a total of one term
            # alone (it would hide that term)
            if not any(raw) or raw in drawn:
                continue
            drawn.append(raw)
            losses.plot(x, raw, color=color, alpha=0.2, linewidth=0.8, label=f"_{run}: {term} raw")
            losses.plot(x, smooth(raw), color=color, linestyle=_style(terms, term), label=f"{run}: {term}")
        rate = [(row["step"], row["lr"]) for row in steps if "lr" in row]
        if rate:
            rates.plot(*zip(*rate), color=color, label=str(run))
        if not epochs:  # an epoch's last step is where it ends
            ends = {row["epoch"]: row["step"] for row in steps if "epoch" in row}
            epochs = [(0, 0)] + sorted((step, epoch) for epoch, step in ends.items())
        _draw_dev(dev, run, color, [row for row in rows if "dev" in row], tasks)
    losses.set(xlabel="optimizer step", ylabel="loss (train, smoothed; raw faint)", yscale="log", title="loss terms")
    rates.set(xlabel="optimizer step", ylabel="learning rate", title="learning rate")
    dev.set(xlabel="optimizer step", ylabel="headline F1 (dev)", title="dev")
    dev.margins(y=0.1)  # room for the F1 written above the last evaluation
    for axes in (losses, rates, dev):
        if len(epochs) > 1:
            _epoch_axis(axes, epochs, runs[0] if len(runs) > 1 else None)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize="small")
    with atomic_write(out, "wb") as handle:
        figure.savefig(handle, format="png", dpi=100)
    plt.close(figure)
    return figure


def _style(styles: dict, key: str):
    return styles.setdefault(key, STYLES[len(styles) % len(STYLES)])


def _draw_dev(axes, run: Path, color: str, evaluations: list[dict], styles: dict) -> None:
    """Each task's dev F1 with a marker per evaluation and its last value written beside it: a run
    evaluated once still shows a labelled point."""
    for task in (evaluations[0]["dev"] if evaluations else {}):
        x, y = [row["step"] for row in evaluations], [row["dev"][task] for row in evaluations]
        axes.plot(x, y, color=color, linestyle=_style(styles, task), marker="o", markersize=7,
                  label=f"{run}: {task}")
        axes.annotate(f"{y[-1]:.1f}", (x[-1], y[-1]), xytext=(0, 8), textcoords="offset points", ha="center",
                      color=color, fontsize="small")


def _epoch_axis(axes, epochs: list[tuple[int, int]], run: Path | None) -> None:
    """Epochs on top, step -> epoch interpolated between epoch ends (named after the first run
    when several are drawn: their epochs may be of other lengths)."""
    from matplotlib.ticker import MaxNLocator

    (s0, e0), (s1, e1), (sm, em), (sn, en) = epochs[0], epochs[1], epochs[-2], epochs[-1]
    far = 10**6  # epochs: beyond the run, its first and last epochs' lengths go on (np.interp would stop)
    steps = [s0 - far * (s1 - s0), *(s for s, _ in epochs), sn + far * (sn - sm)]
    counts = [e0 - far * (e1 - e0), *(e for _, e in epochs), en + far * (en - em)]
    top = axes.secondary_xaxis("top", functions=(lambda s: np.interp(s, steps, counts),
                                                 lambda e: np.interp(e, counts, steps)))
    top.set_xlabel("epoch" if run is None else f"epoch ({run})")
    top.xaxis.set_major_locator(MaxNLocator(integer=True))
