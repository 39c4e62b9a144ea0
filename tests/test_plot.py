"""`genie plot`: the loss terms and dev F1 of several runs on one PNG, from their metrics.jsonl;
a missing or broken file is one line naming it."""

from __future__ import annotations

import json

import pytest
from cli_output import run_cli

from genie.plot import plot_runs

pytest.importorskip("matplotlib", reason="genie plot needs matplotlib (make install has it)")


def write_run(folder, scale: float) -> list[dict]:
    lines = [{"step": s, "epoch": 1 + s // 4, "lr": 0.001, "lm_loss": scale * 8 / s, "grounding_loss": 0.0,
              "loss": scale * 8 / s, "examples_per_second": 100.0} for s in range(1, 9)]
    lines.insert(4, {"step": 4, "epoch": 1, "dev": {"mner": 40.0 * scale}})
    lines.append({"step": 8, "epoch": 2, "dev": {"mner": 60.0 * scale}})
    folder.mkdir()
    (folder / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return lines


def test_several_runs_on_one_figure(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_run(a, 1.0)
    write_run(b, 0.5)
    figure = plot_runs([a, b], tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    losses, dev = figure.axes
    curves = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in losses.lines}
    # grounding_loss is 0 throughout (an MNER run): not drawn
    assert set(curves) == {f"{a}: lm_loss", f"{a}: loss", f"{b}: lm_loss", f"{b}: loss"}
    assert curves[f"{b}: loss"] == (list(range(1, 9)), [4 / s for s in range(1, 9)])
    scores = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in dev.lines}
    assert scores == {f"{a}: mner": ([4, 8], [40.0, 60.0]), f"{b}: mner": ([4, 8], [20.0, 30.0])}


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

