"""How a checked bar reads in text: its measured numbers and its verdict.

A bar is what ``benchmarks/default_checkpoint.py`` writes under ``bars``: ``{"requirement", "threshold",
"measured": {name: number, list or text}, "status": "pass" | "fail" | "not measured", "reason"}``. The harness's
markdown report and a base checkpoint's card (``hf_metatts.model_cards``) both render bars with these helpers.
"""

from collections.abc import Mapping

PASS, FAIL, NOT_MEASURED = "pass", "fail", "not measured"


def measured_text(measured: Mapping) -> str:
    """``{"wer": 0.5899, "difference_ci95": [0.01, 0.13], "source": ...}`` -> ``"wer 0.5899, difference_ci95
    [0.01, 0.13]"``: 4 significant digits, ``source`` and empty entries left out (a ``*_note`` is kept)."""
    parts = []
    for key, value in measured.items():
        if key == "source" or value is None and not key.endswith("_note"):
            continue
        if isinstance(value, list):
            value = "[" + ", ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in value) + "]"
        parts.append(f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}")
    return ", ".join(parts) or "-"


def verdict_text(bar: Mapping) -> str:
    """``**pass**``, ``**FAIL**`` or ``not measured: <reason>``."""
    reason = bar.get("reason") or ""
    return {PASS: "**pass**", FAIL: "**FAIL**"}.get(
        bar.get("status"), reason if reason.startswith(NOT_MEASURED) else f"{NOT_MEASURED}: {reason}")


def table_cell(value) -> str:
    """A value as one markdown table cell (a ``|`` inside it would split the row)."""
    return str(value).replace("|", "/")


__all__ = ["FAIL", "NOT_MEASURED", "PASS", "measured_text", "table_cell", "verdict_text"]
