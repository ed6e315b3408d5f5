"""``hf-metatts evaluate``: measure a voice on its target's real utterances; and the adaptation benchmark's
command-line arguments (used by ``benchmarks/adaptation.py``).

    hf-metatts evaluate --voice my-voice --references data/voices --split test --target flite:awb --out eval.json

Nothing is written when the evaluation fails.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import sys
import tempfile
from pathlib import Path

from .benchmark import EVAL_METRICS

logger = logging.getLogger(__name__)


def write_json_atomic(path: str, data: dict) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file, so a failure leaves no partial file."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(data, stream, indent=2)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def script_command(script: str, argv: list[str] | None = None) -> str:
    """How a script was run, for its result's record: ``python <folder>/<script> <arguments>``, quoted so that the
    line runs again in a shell. ``script`` is the script's file (``__file__``), named by its folder and name
    (``benchmarks/adaptation_rules.py``); the arguments are ``argv`` as given to its ``main``, or the process's
    own when ``argv`` is None."""
    path = Path(script)
    arguments = sys.argv[1:] if argv is None else list(argv)
    return shlex.join(["python", f"{path.parent.name}/{path.name}", *arguments])


def _references(args) -> tuple[list, str | None]:
    """Rows of the target (up to ``--max-utterances``) plus, for the EER, those of the other tasks, and the target;
    or, for a clip folder (`hf_metatts.clip_folders`), its first ``--max-utterances`` ``(audio path, transcript)``
    pairs, all of the target (None: every reference)."""
    from datasets import Audio, load_from_disk

    from ..clip_folders import is_clip_folder, read_clip_folder

    if is_clip_folder(args.references):
        return read_clip_folder(args.references, args.text_column)[: args.max_utterances], None
    if args.target is None:
        raise ValueError(f"{args.references} is a dataset: give --target, the voice's speaker among its "
                         f"{args.speaker_column!r} values.")
    data = load_from_disk(args.references)
    if hasattr(data, "keys"):
        if args.split not in data:
            raise ValueError(f"{args.references} has no split {args.split!r} (has {list(data)}).")
        data = data[args.split]
    if args.speaker_column not in data.column_names:
        raise ValueError(f"The references have no column {args.speaker_column!r} (columns: {data.column_names}).")
    data = data.cast_column("audio", Audio(decode=False))
    counts: dict[str, int] = {}
    rows = []
    for row in data:
        label = str(row[args.speaker_column])
        if counts.get(label, 0) < args.max_utterances:
            counts[label] = counts.get(label, 0) + 1
            rows.append({"audio": row["audio"], "text": row["text"], "speaker_id": label,
                         "language": row.get("language")})
    return rows, args.target


def _evaluate(args) -> int:
    from ..modeling_metatts import MetaTTSForTextToSpeech
    from ..voice import MetaTTSVoice
    from .voice_eval import evaluate_voice

    voice = MetaTTSVoice.from_pretrained(args.voice) if args.voice else None
    model_source = args.model or (voice.config.base_model if voice is not None else None)
    if not model_source:
        raise ValueError("Give --model (the base checkpoint) or a --voice that names its base.")
    model = MetaTTSForTextToSpeech.from_pretrained(model_source).eval()
    if voice is not None:
        voice.check_compatible(model)
    rows, target = _references(args)
    metrics = args.metrics or None
    result = evaluate_voice(model, voice, rows, target=target, metrics=metrics)
    result.update(voice=args.voice, model=model_source, references=args.references, split=args.split)
    if args.out:
        write_json_atomic(args.out, result)
    summary = {key: result.get(key) for key in ("similarity", "mcd", "wer", "reference_wer", "eer", "num_utterances")}
    print(json.dumps(summary))
    return 0


def add_benchmark_arguments(parser) -> None:
    """The adaptation benchmark's arguments (see ``benchmarks/adaptation.py``)."""
    parser.add_argument("--checkpoints", nargs="+", required=True, metavar="METHOD=DIR",
                        help="a checkpoint per method: maml, metasgd, meta_lstm, zero_shot, finetune")
    parser.add_argument("--corpus", required=True, help="DatasetDict folder (hf-metatts build-corpus)")
    parser.add_argument("--task-column", default="speaker_id", help="speaker_id, language or style")
    parser.add_argument("--split", default="test")
    parser.add_argument("--shots", nargs="+", type=int, default=[1, 5, 10])
    parser.add_argument("--steps", nargs="+", type=int, default=[0, 1, 5, 10, 20, 50, 100])
    parser.add_argument("--max-tasks", type=int, default=None)
    parser.add_argument("--heldout", type=int, default=1, help="held-out sentences per task")
    parser.add_argument("--lr", nargs="*", default=[], metavar="METHOD=LR", help="learning rate per method")
    parser.add_argument("--metrics", nargs="+", default=list(EVAL_METRICS),
                        choices=list(EVAL_METRICS), help="similarity is always measured")
    parser.add_argument("--languages", nargs="+", default=None, metavar="PREFIX",
                        help="keep only rows whose language code starts with one of these (e.g. en); default: all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", required=True, help="JSON path; .png and .md are written beside it")


def run_benchmark_command(args, command: str | None = None) -> int:
    """Run the benchmark from parsed arguments and write JSON, PNG and markdown (only when it succeeded); the JSON
    records ``command``, how it was run (:func:`script_command`)."""
    import torch

    from .benchmark import BenchmarkSettings, parse_pairs, run_benchmark
    from .curves import plot_curves, render_markdown

    torch.set_num_threads(args.threads)
    settings = BenchmarkSettings(
        corpus=args.corpus, checkpoints=parse_pairs(args.checkpoints), task_column=args.task_column,
        split=args.split, shots=list(args.shots), steps=list(args.steps), max_tasks=args.max_tasks,
        heldout=args.heldout, seed=args.seed, lrs=parse_pairs(args.lr, float),
        eval_metrics=sorted(set(args.metrics) | {"similarity"}), languages=args.languages)
    result = {**run_benchmark(settings), "command": command}
    stem = os.path.splitext(args.out)[0]
    write_json_atomic(args.out, result)
    plot_curves(result, stem + ".png")
    with open(stem + ".md", "w", encoding="utf-8") as stream:
        stream.write(render_markdown(result))
    print(json.dumps({"out": args.out, "seconds": result["seconds"],
                      "methods": {m: e["status"] for m, e in result["methods"].items()}}))
    return 0


def register(subparsers) -> None:
    """Add ``hf-metatts evaluate``."""
    from ..cli import guarded

    evaluate = subparsers.add_parser("evaluate", help="measure a voice on its target's real utterances")
    evaluate.add_argument("--voice", help="voice folder or repo id (omit to measure the base voice)")
    evaluate.add_argument("--model", help="base checkpoint (default: the one the voice names)")
    evaluate.add_argument("--references", required=True,
                          help="real utterances: a dataset folder (load_from_disk), or a clip folder of the target "
                          "alone (.txt transcripts, or an audiofolder or LJSpeech metadata.csv)")
    evaluate.add_argument("--split", default="test", help="split of --references (default test)")
    evaluate.add_argument("--target", help="the voice's speaker (value of --speaker-column); a dataset needs it")
    evaluate.add_argument("--text-column", default="text",
                          help="transcript column of an audiofolder metadata file (default text)")
    evaluate.add_argument("--speaker-column", default="speaker_id", help="column naming each utterance's speaker "
                          "(default speaker_id)")
    evaluate.add_argument("--max-utterances", type=int, default=10, help="per speaker")
    evaluate.add_argument("--metrics", nargs="+", choices=["similarity", "mcd", "wer", "eer"],
                          help="default: all (eer only when the references hold several speakers)")
    evaluate.add_argument("--out", help="JSON path for the full result")
    evaluate.set_defaults(func=guarded(_evaluate))


__all__ = ["add_benchmark_arguments", "register", "run_benchmark_command", "script_command", "write_json_atomic"]

if __name__ == "__main__":  # pragma: no cover
    sys.exit("use: hf-metatts evaluate")
