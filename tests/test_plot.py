"""`genie plot`: the loss terms (smoothed, raw faint behind), learning rate and dev F1 of several
runs on one PNG from their metrics.jsonl, a colour per run, a line style per term, epochs on top;
a missing or broken file is one line naming it."""

from __future__ import annotations

import json

import pytest
from cli_output import run_cli

from genie.analysis.plot import plot_runs, smooth

pytest.importorskip("matplotlib", reason="genie plot needs matplotlib (make install has it)")


def write_run(folder, scale: float, grounding: float = 0.0, evaluations=(4, 8)) -> list[dict]:
    """Eight steps, four an epoch, the learning rate decaying; dev F1 at the given steps."""
    lines = [{"step": s, "epoch": 1 + (s - 1) // 4, "lr": 0.001 * (1 - s / 10), "lm_loss": scale * 8 / s,
              "grounding_loss": grounding / s, "loss": (scale * 8 + grounding) / s, "examples_per_second": 100.0}
             for s in range(1, 9)]
    for step in sorted(evaluations, reverse=True):
        lines.insert(step, {"step": step, "epoch": step // 4, "dev": {"mner": 10.0 * step * scale}})
    folder.mkdir()
    (folder / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return lines


def panels(figure) -> dict:
    return {axes.get_title(): axes for axes in figure.axes if axes.get_title()}


def test_several_runs_on_one_figure(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_run(a, 1.0, grounding=3.0)
    write_run(b, 0.5)
    figure = plot_runs([a, b], tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    axes = panels(figure)
    lines = {line.get_label(): line for line in axes["loss terms"].lines}
    # b is an MNER run: grounding_loss is 0 throughout and the total is lm_loss alone, neither drawn;
    # each curve raw (faint) and smoothed
    drawn = {f"{a}: loss", f"{a}: lm_loss", f"{a}: grounding_loss", f"{b}: lm_loss"}
    assert set(lines) == drawn | {f"_{name} raw" for name in drawn}
    raw, smoothed = lines[f"_{b}: lm_loss raw"], lines[f"{b}: lm_loss"]
    assert list(raw.get_xdata()) == list(range(1, 9)) and list(raw.get_ydata()) == [4 / s for s in range(1, 9)]
    assert list(smoothed.get_xdata()) == list(range(1, 9)) and list(smoothed.get_ydata()) == smooth(raw.get_ydata())
    assert smoothed.get_ydata()[-1] > 2 * raw.get_ydata()[-1] and raw.get_alpha() < 0.5 < (smoothed.get_alpha() or 1)
    # one colour per run (losses, learning rate, dev alike), one line style per term (the same in both runs)
    colours = {run: {line.get_color() for panel in axes.values() for line in panel.lines
                     if line.get_label().lstrip("_").startswith(str(run))} for run in (a, b)}
    assert all(len(c) == 1 for c in colours.values()) and colours[a] != colours[b]
    styles = {term: {lines[f"{run}: {term}"].get_linestyle() for run in (a, b) if f"{run}: {term}" in lines}
              for term in ("loss", "lm_loss", "grounding_loss")}
    assert all(len(s) == 1 for s in styles.values()) and len(set.union(*styles.values())) == 3
    rates = {line.get_label(): list(line.get_ydata()) for line in axes["learning rate"].lines}
    assert rates == {str(run): [0.001 * (1 - s / 10) for s in range(1, 9)] for run in (a, b)}
    assert axes["learning rate"].get_ylabel() == "learning rate"
    scores = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in axes["dev"].lines}
    assert scores == {f"{a}: mner": ([4, 8], [40.0, 80.0]), f"{b}: mner": ([4, 8], [20.0, 40.0])}


def test_epochs_on_a_top_axis(tmp_path):
    write_run(tmp_path / "a", 1.0)
    figure = plot_runs([tmp_path / "a"], tmp_path / "curves.png")
    for panel in panels(figure).values():
        (top,) = panel.child_axes
        assert top.get_xlabel() == "epoch"
        # epoch -> step: each epoch ends at its last step; beyond the run, epochs go on as long
        assert list(top.xaxis.get_transform().transform([-1, 0, 0.5, 1, 2, 3])) == [-4, 0, 2, 4, 8, 12]
        assert [tick for tick in top.get_xticks() if 0 <= tick <= 2] == [0, 1, 2]  # whole epochs


def test_a_single_evaluation_is_a_labelled_marker(tmp_path):
    write_run(tmp_path / "a", 1.0, evaluations=(4,))
    dev = panels(plot_runs([tmp_path / "a"], tmp_path / "curves.png"))["dev"]
    (line,) = dev.lines
    assert (list(line.get_xdata()), list(line.get_ydata())) == ([4], [40.0])
    assert line.get_marker() == "o" and line.get_markersize() >= 6
    assert dev.get_legend_handles_labels()[1] == [f"{tmp_path / 'a'}: mner"]
    (value,) = dev.texts
    assert value.get_text() == "40.0" and value.xy == (4, 40.0) and value.get_color() == line.get_color()
    assert dev.get_ylim()[0] < 40 < dev.get_ylim()[1] and dev.get_xlim()[0] < 4 < dev.get_xlim()[1]


def test_smoothing_follows_the_trend_from_the_first_value():
    assert smooth([5.0] * 30) == pytest.approx([5.0] * 30)  # debiased: no pull towards 0 at the start
    noisy = [1.0 + (-1) ** n * 0.5 for n in range(100)]
    assert max(smooth(noisy)[20:]) - min(smooth(noisy)[20:]) < 0.2 < max(noisy) - min(noisy)


def test_the_command_writes_beside_the_first_run_and_names_a_bad_file(tmp_path, capsys):
    write_run(tmp_path / "a", 1.0)
    assert main_plot(capsys, tmp_path / "a") == (0, str(tmp_path / "a" / "curves.png"))
    assert (tmp_path / "a" / "curves.png").is_file()
    code, line = run_cli(capsys, "plot", tmp_path / "a", tmp_path / "missing")
    assert code == 2 and line == f"genie: error: {tmp_path / 'missing' / 'metrics.jsonl'}: no such file"
    with open(tmp_path / "a" / "metrics.jsonl", "a") as handle:
        handle.write('{"epoch": 3}\n')
    code, line = run_cli(capsys, "plot", tmp_path / "a")
    assert code == 2 and "metrics.jsonl:11" in line and "integer step" in line


def main_plot(capsys, *runs) -> tuple[int, str]:
    from genie.cli import main

    code = main(["plot", *map(str, runs)])
    return code, capsys.readouterr().out.strip()

