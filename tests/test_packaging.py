"""What an install puts on the path: genie and nothing else. `eval/`, `data_builders/` and
`prompts/` are top-level folders of the repository but install inside genie, so they shadow no
other package named `eval` (setup.cfg, package_dir)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
INSIDE = {"genie": "genie", "eval": "genie/eval", "data_builders": "genie/data_builders",
          "prompts": "genie/prompt_templates"}


def test_a_wheel_holds_every_module_and_template_inside_genie_only(tmp_path):
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                            "-w", str(tmp_path), str(REPO)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("genie-*.whl")
    names = {n for n in zipfile.ZipFile(wheel).namelist() if ".dist-info/" not in n}
    expected = {f"{INSIDE[folder]}/{path.relative_to(REPO / folder).as_posix()}"
                for folder in INSIDE for path in (REPO / folder).rglob("*")
                if path.suffix in (".py", ".yaml") and "__pycache__" not in path.parts}
    assert names == expected
    assert {name.split("/")[0] for name in names} == {"genie"}
    metadata = next(n for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".dist-info/METADATA"))
    requires = {line.split()[1].split(";")[0] for line in zipfile.ZipFile(wheel).read(metadata).decode().splitlines()
                if line.startswith("Requires-Dist:") and "extra ==" not in line}
    assert {"torch<2.14,>=2.4", "transformers<6,>=5.0", "numpy<3,>=1.26", "filelock<5,>=3.12"} <= requires, requires


def test_the_installed_genie_finds_its_parts_and_no_top_level_eval(tmp_path):
    probe = ("import importlib.util, genie.eval.gmner, genie.data_builders.gmner\n"
             "from genie.tasks import TASKS\n"
             "print(all(t.prompts_file.is_file() for t in TASKS.values()), len(TASKS),\n"
             "      importlib.util.find_spec('eval'), importlib.util.find_spec('data_builders'))\n")
    run = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["True", str(len(list((REPO / "prompts").glob("*.yaml")))), "None", "None"]
