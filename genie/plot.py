"""`genie plot`: the loss terms and the dev headline F1 of one or more runs against optimizer
steps, from their metrics.jsonl, on one figure (matplotlib: the `plot` extra)."""

from __future__ import annotations

from pathlib import Path

from genie.errors import GenieError
from genie.io import atomic_write
from genie.metrics_log import FILE
from genie.records import read_lines


def _line(row: object) -> dict:
    if not isinstance(row, dict) or not isinstance(row.get("step"), int):
        raise ValueError("not a metrics line (an object with an integer step)")
    return row


def plot_runs(runs: list[Path], out: Path):
    """Draw the runs (each labelled by its folder as given) and save a PNG to `out`; returns the
    figure: its left axes hold the loss terms, its right axes each task's dev F1."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        raise GenieError("genie plot needs matplotlib: pip install -e \".[plot]\" (make install has it)") from None
    figure, (losses, dev) = plt.subplots(1, 2, figsize=(12, 4.5), layout="constrained")
    for run in runs:
        rows = read_lines(run / FILE, _line)
        steps = [row for row in rows if "loss" in row]
        for term in (key for key in (steps[0] if steps else {}) if key.endswith("loss")):
            if not any(row[term] for row in steps):  # a term the run does not have (grounding, for MNER)
                continue
            losses.plot([row["step"] for row in steps], [row[term] for row in steps], label=f"{run}: {term}")
        evaluations = [row for row in rows if "dev" in row]
        for task in (evaluations[0]["dev"] if evaluations else {}):
            dev.plot([row["step"] for row in evaluations], [row["dev"][task] for row in evaluations], marker="o",
                     label=f"{run}: {task}")
    losses.set(xlabel="optimizer step", ylabel="loss (train)", yscale="log", title="loss terms")
    dev.set(xlabel="optimizer step", ylabel="headline F1 (dev)", title="dev")
    for axes in (losses, dev):
        if axes.lines:
            axes.legend(fontsize="small")
    with atomic_write(out, "wb") as handle:
        figure.savefig(handle, format="png", dpi=100)
    plt.close(figure)
    return figure
