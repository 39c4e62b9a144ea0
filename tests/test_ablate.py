"""`make ablate`: finished runs are reused, and the table holds each cell's mean and spread."""

from __future__ import annotations

import json
import statistics

from bench.ablate import ARMS, main, markers, run_dir
from genie.records import Entity, Record, write_records


def test_ablation_reuses_finished_runs_and_tabulates_mean_and_spread(tmp_path):
    noises, seeds = [0.0, 0.5], [1, 2, 3]
    out = tmp_path / "runs"
    scores = {}
    for noise in noises:  # the demo test split the reference is computed on
        demo = out / "gmner" / f"demo_noise{round(noise * 100)}" / "gmner"
        demo.mkdir(parents=True)
        write_records(demo / "test.jsonl", [
            Record("1", "gmner", ["Messi", "in", "Paris"], "i", [Entity(0, 1, "Messi", "PER", [[1, 2, 30, 40]]),
                                                                 Entity(2, 3, "Paris", "LOC")]),
            Record("2", "gmner", ["Rome"], "j", [Entity(0, 1, "Rome", "LOC")])])
    for k, arm in enumerate(ARMS):
        for noise in noises:
            for seed in seeds:
                f1 = 50.0 + 10 * k - 20 * noise + seed
                scores.setdefault((arm, noise), []).append(f1)
                folder = run_dir(out / "gmner", arm, noise, seed)
                folder.mkdir(parents=True)
                (folder / "test_metrics.json").write_text(json.dumps({"gmner": {"f1": f1}, "mner": {"f1": 99.0}}))
    start, end = markers("gmner")
    doc = tmp_path / "regularizers.md"
    doc.write_text(f"intro\n{start}\nstale\n{end}\noutro\n")
    results = tmp_path / "ablation.json"
    code = main(["--noise", *map(str, noises), "--seeds", *map(str, seeds), "--out", str(out), "--doc",
                 str(doc), "--results", str(results), "data.demo_train_tweets=20"])
    assert code == 0
    assert not list((out / "gmner").glob("*.log"))  # nothing was trained again
    table = doc.read_text().split(start)[1].split(end)[0]
    assert "stale" not in table and doc.read_text().endswith(f"{end}\noutro\n")
    rows = {line.split("|")[1].strip(): line for line in table.strip().splitlines()[2:]}
    assert list(rows) == [*ARMS, "*reference: gold text, nothing grounded*"]
    assert rows["*reference: gold text, nothing grounded*"].count("*66.67*") == 2  # 2 of 3 gold entities right
    for (arm, noise), values in scores.items():
        cell = json.loads(results.read_text())["cells"][f"{arm}@{noise}"]
        assert cell["f1"] == values and cell["all_f1"][0] == {"gmner": values[0], "mner": 99.0}
        text = f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"
        assert rows[arm].split("|")[2 + noises.index(noise)].strip() == text
