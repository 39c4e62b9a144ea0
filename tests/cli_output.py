"""Running `genie` in the test process (`from cli_output import run_cli`): the exit code, and the
printed JSON summary or genie's one line (an error, or "interrupted"), which follows any library
progress bar and is checked to be the only one, with no traceback."""

from __future__ import annotations

import json

from genie.cli import main


def run_cli(capsys, *argv) -> tuple[int, dict | str]:
    code = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    if code == 0:
        return code, json.loads(out)
    assert err.count("genie: ") == 1 and err.endswith("\n") and "Traceback" not in err, err
    return code, err.rstrip("\n").split("\r")[-1].splitlines()[-1]
