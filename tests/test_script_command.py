"""`hf_metatts.evaluation.cli.script_command`: how a benchmark script was run, recorded in its result so that the
line runs again; the arguments a script's ``main`` was given win over the process's own."""

from __future__ import annotations

import json
import shlex
import sys

from benchmark_scripts import BENCHMARKS, load_benchmark_script

from hf_metatts.evaluation.cli import script_command


def test_the_script_is_named_by_its_folder_and_its_arguments_are_quoted():
    line = script_command(str(BENCHMARKS / "adaptation_rules.py"), ["--rules", "adam:0.02+gv0.3", "--out", "a b.json"])
    assert line == "python benchmarks/adaptation_rules.py --rules adam:0.02+gv0.3 --out 'a b.json'"
    assert shlex.split(line)[2:] == ["--rules", "adam:0.02+gv0.3", "--out", "a b.json"]
    assert script_command("/elsewhere/benchmarks/x.py", []) == "python benchmarks/x.py"


def test_without_arguments_given_the_process_s_own_are_recorded(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["benchmarks/x.py", "--seed", "1", "a#b@5"])
    assert script_command("benchmarks/x.py") == "python benchmarks/x.py --seed 1 'a#b@5'"
    assert script_command("benchmarks/x.py", ["--seed", "2"]) == "python benchmarks/x.py --seed 2"


def test_a_script_run_from_the_shell_records_its_command_line(tmp_path, monkeypatch):
    """``python benchmarks/paired_comparison.py ...``: ``main()`` gets no argv and reads the process's own."""
    speakers = ["flite:a", "flite:b", "flite:c", "espeak:d", "espeak:e"]

    def result(path, values):
        path.write_text(json.dumps({"checkpoint": "outputs/x", "split": "test", "shots": 5, "results": {"learned": {
            "per_task": {s: {"similarity": v} for s, v in zip(speakers, values)}}}}))
        return str(path)

    base, other = (result(tmp_path / "base.json", [0.7, 0.8, 0.75, 0.6, 0.65]),
                   result(tmp_path / "other.json", [0.72, 0.79, 0.8, 0.62, 0.64]))
    out = tmp_path / "cmp.json"
    arguments = ["--baseline", base, "--candidates", other, "--out", str(out)]
    monkeypatch.setattr(sys, "argv", ["benchmarks/paired_comparison.py", *arguments])
    assert load_benchmark_script("paired_comparison").main() == 0
    assert json.loads(out.read_text())["command"] == shlex.join(["python", "benchmarks/paired_comparison.py",
                                                                 *arguments])
