"""README is the front page and docs/ holds the rest: every relative link (and #anchor) of README
and docs/*.md resolves, every docs page is linked from README, README stays short, every `genie`
command of their bash blocks names a real subcommand, the bench and ablation tables' markers
stand in the pages `make bench` and `make ablate` write to, and .gitignore lists the folders their
commands create. Each check also runs on a small broken
example, so it is seen to fail."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections import Counter
from functools import cache
from pathlib import Path
from urllib.parse import unquote

import pytest
from docs_pages import FENCE, REPO, is_relative, link_targets, linked_pages, pages

README = REPO / "README.md"
PAGES = pages()
MAX_README_LINES = 200
HEADING = re.compile(r"^#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$", re.MULTILINE)
BASH_BLOCK = re.compile(r"^```(?:bash|sh|shell)[ \t]*\n(.*?)^```", re.DOTALL | re.MULTILINE)


def name(page: Path) -> str:
    return str(page.relative_to(REPO)) if page.is_relative_to(REPO) else page.name


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped except '-' and '_', spaces -> '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The anchors of a page's headings (not the `#` comments of its code blocks); a repeated
    heading gets -1, -2, ... as on GitHub."""
    seen: Counter[str] = Counter()
    found = set()
    for heading in HEADING.findall(FENCE.sub("", text)):
        base = anchor(heading)
        found.add(f"{base}-{seen[base]}" if seen[base] else base)
        seen[base] += 1
    return found


def broken_links(page: Path) -> list[str]:
    """The page's relative links whose file, or whose #anchor in a markdown file, does not exist."""
    problems = []
    for target in link_targets(page.read_text(encoding="utf-8")):
        if not is_relative(target):
            continue
        path, _, fragment = target.partition("#")
        dest = (page.parent / unquote(path)).resolve() if path else page
        if not dest.exists():
            problems.append(f"{name(page)}: ({target}): no file {unquote(path)}")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest.read_text(encoding="utf-8")):
            problems.append(f"{name(page)}: ({target}): no heading with anchor #{fragment} in {dest.name}")
        elif fragment and dest.suffix != ".md":
            problems.append(f"{name(page)}: ({target}): an anchor into a file that is not markdown")
    return problems


def unlinked_pages(readme: Path) -> list[str]:
    """The docs/*.md pages beside `readme` that it does not link to."""
    linked = set(linked_pages(readme))
    return sorted(page.name for page in (readme.parent / "docs").glob("*.md") if page.resolve() not in linked)


def genie_commands(text: str) -> list[list[str]]:
    """The words after `genie` (or `-m genie.cli`) in each command of the page's bash blocks."""
    commands = []
    for block in BASH_BLOCK.findall(text):
        for line in re.sub(r"\\\n", " ", block).splitlines():
            words = shlex.split(line, comments=True)
            for i, word in enumerate(words):
                if word == "genie" or word.endswith("/bin/genie") or (word == "genie.cli" and words[i - 1:i] == ["-m"]):
                    commands.append(words[i + 1:])
    return commands


@cache
def subcommands(*words: str) -> frozenset[str]:
    """The subcommands `genie WORDS --help` lists (none for a command without any), from the
    worktree's own genie."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    shown = subprocess.run([sys.executable, "-m", "genie.cli", *words, "--help"], capture_output=True, text=True,
                           env=env, cwd=REPO, check=True).stdout
    listed = re.search(r"^positional arguments:\n\s+\{([^}]*)\}", shown, re.MULTILINE)
    return frozenset(listed.group(1).split(",")) if listed else frozenset()


def unknown_subcommands(text: str) -> list[str]:
    """Each `genie ...` command whose subcommand (or sub-subcommand, `genie features build`) genie lacks."""
    problems = []
    for words in genie_commands(text):
        given: list[str] = []
        for word in words:
            known = subcommands(*given)
            if not known:
                break
            if word not in known:
                problems.append(f"genie {' '.join(words)}: no subcommand {' '.join([*given, word])!r} "
                                f"(known: {', '.join(sorted(known))})")
                break
            given.append(word)
        else:
            if subcommands(*given):
                problems.append(f"genie {' '.join(words)}: no subcommand given")
    return problems


# --- the pages as they are ----------------------------------------------------------------------

@pytest.mark.parametrize("page", PAGES, ids=[name(page) for page in PAGES])
def test_relative_links_point_to_existing_files_and_headings(page):
    assert not broken_links(page)


def test_every_docs_page_is_linked_from_readme():
    assert len(PAGES) > 1, "no docs/*.md pages"
    assert not unlinked_pages(README)


def test_readme_stays_a_front_page():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines < MAX_README_LINES, f"README.md has {lines} lines: move sections into docs/ and link them"


def test_every_genie_command_in_the_docs_is_a_real_subcommand():
    assert not [problem for page in PAGES for problem in unknown_subcommands(page.read_text(encoding="utf-8"))]
    # and the commands were found: the docs show every subcommand
    commands = [words for page in PAGES for words in genie_commands(page.read_text(encoding="utf-8"))]
    assert {words[0] for words in commands if words} >= subcommands()


def test_the_bench_and_ablation_tables_are_written_to_pages_that_hold_their_markers():
    from bench import ablate, extraction, run

    assert run.DOC.parent == ablate.DOC.parent == extraction.DOC.parent == REPO / "docs"
    assert {run.BENCH_START, run.BENCH_END} <= set(run.DOC.read_text(encoding="utf-8").splitlines())
    assert run.README == README and {run.SUMMARY_START, run.SUMMARY_END} <= set(README.read_text(encoding="utf-8").splitlines())
    assert set(ablate.markers("gmner")) <= set(ablate.DOC.read_text(encoding="utf-8").splitlines())
    assert {extraction.START, extraction.END} <= set(extraction.DOC.read_text(encoding="utf-8").splitlines())


# --- each check fails on a broken example ------------------------------------------------------

def test_anchors_follow_githubs_rule():
    assert anchor("Counting rules, and the published ones") == "counting-rules-and-the-published-ones"
    assert anchor("Ablation: `make ablate TASK=gmner`") == "ablation-make-ablate-taskgmner"
    assert anchor("Scaling out: multi-GPU and DeepSpeed") == "scaling-out-multi-gpu-and-deepspeed"
    assert anchor("train.output_dir and run_folder") == "trainoutput_dir-and-run_folder"
    assert anchors("# A\n## A\n```bash\n# B\n```\n### C d\n") == {"a", "a-1", "c-d"}


def test_broken_links_and_anchors_are_found(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A page\n\n## Part one\n")
    page = tmp_path / "README.md"
    page.write_text("[ok](docs/a.md) [ok](docs/a.md#part-one) [ok](#top) [web](https://example.org/x.md)\n"
                    "`[code](gone.md)`\n```bash\n[code](gone.md)\n```\n# Top\n"
                    "[file](docs/b.md) [heading](docs/a.md#part-two) [here](#nowhere)\n")
    problems = broken_links(page)
    assert len(problems) == 3 and all(any(target in p for p in problems)
                                      for target in ("docs/b.md", "#part-two", "#nowhere"))


def test_an_unlinked_docs_page_is_found(tmp_path):
    (tmp_path / "docs").mkdir()
    for page in ("a.md", "b.md", "README.md"):
        (tmp_path / "docs" / page).write_text(f"# {page}\n")
    (tmp_path / "README.md").write_text("[a](docs/a.md), [all](docs/README.md), [b's code](`docs/b.md`)\n")
    assert unlinked_pages(tmp_path / "README.md") == ["b.md"]


def test_an_unknown_genie_subcommand_is_found():
    text = ("```bash\ngenie train --config x.yaml  # and genie frobnicate in a comment\n"
            "genie features verify s.store\n.venv/bin/genie frobnicate --x 1\n"
            "accelerate launch --cpu -m genie.cli tran --config x.yaml\ngenie features \\\n   check s.store\n```\n"
            "```json\n{\"genie\": \"frobnicate\"}\n```\n")
    assert genie_commands(text)[0] == ["train", "--config", "x.yaml"]
    problems = unknown_subcommands(text)
    assert len(problems) == 3 and [p.split(": no subcommand ")[1].split(" (")[0] for p in problems] == [
        "'frobnicate'", "'tran'", "'features check'"]


def created_folders(text: str) -> set[str]:
    """The top folders the page's `genie` commands write into: the first folder of each relative
    --out / --output path (the path itself when it has no suffix: then it is a folder)."""
    folders = set()
    for words in genie_commands(text):
        for option, value in zip(words, words[1:]):
            path = Path(value)
            if option in ("--out", "--output") and not path.is_absolute() and (len(path.parts) > 1 or not path.suffix):
                folders.add(path.parts[0])
    return folders


def test_gitignore_lists_every_folder_the_documented_commands_create():
    from genie.config import load_config

    made = {"runs", load_config(None).data.demo_dir}  # `make train`'s run folders and demos
    made |= {folder for page in PAGES for folder in created_folders(page.read_text(encoding="utf-8"))}
    assert {"data", "backbones", "detectors", "regions"} <= made  # the commands were found
    lines = (REPO / ".gitignore").read_text(encoding="utf-8").splitlines()
    ignored = {line.strip().strip("/") for line in lines if line.strip() and not line.startswith("#")}
    assert made <= ignored, f".gitignore misses {sorted(made - ignored)}"


def test_the_folders_a_command_creates_are_found():
    text = ("```bash\ngenie convert --out data/train.jsonl\ngenie features extract --out regions --images photos\n"
            "genie predict --output preds.jsonl\ngenie backbone --out /tmp/x\n```\n")
    assert created_folders(text) == {"data", "regions"}
