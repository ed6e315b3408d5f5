"""Loading the scripts of ``benchmarks/`` (not a package) as modules, for their tests."""

import importlib.util
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark_script(name: str, module_name: str | None = None):
    """``benchmarks/<name>.py`` as a fresh module (named ``module_name``, default ``name``)."""
    spec = importlib.util.spec_from_file_location(module_name or name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
