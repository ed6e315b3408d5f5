"""``hf-metatts adapt`` (clips -> voice folder) and ``hf-metatts push`` (voice or base folder -> Hub)."""

import json
import logging
import os

from .cli import guarded
from .voice_adapt import VOICE_METHODS

logger = logging.getLogger(__name__)

def load_clip_source(source: str, split: str = "train", text_column: str = "text"):
    """A clip folder (`hf_metatts.clip_folders`: sidecar .txt transcripts, an audiofolder metadata file with
    ``text_column``, or LJSpeech metadata), a dataset saved with ``save_to_disk``, or a Hub dataset id."""
    import datasets

    from .clip_folders import is_saved_dataset, read_clip_folder

    if os.path.isdir(source):
        if is_saved_dataset(source):
            loaded = datasets.load_from_disk(source)
            return loaded[split] if isinstance(loaded, datasets.DatasetDict) else loaded
        return read_clip_folder(source, text_column)
    return datasets.load_dataset(source, split=split)


def first_clips(clips, count: int | None):
    """The first ``count`` clips of a list or a `datasets.Dataset` (all of them when ``count`` is None)."""
    if count is None:
        return clips
    if count < 1:
        raise ValueError(f"--first {count}: give a number of clips >= 1.")
    return clips.select(range(min(count, len(clips)))) if hasattr(clips, "select") else clips[:count]


def _adapt(args) -> int:
    from transformers import AutoModelForTextToWaveform

    import hf_metatts  # noqa: F401  (registers the Auto classes)

    from .voice_validation import ClipValidation

    clips = first_clips(load_clip_source(args.clips, args.split, args.text_column), args.first)
    from . import DEFAULT_CHECKPOINT

    model = AutoModelForTextToWaveform.from_pretrained(args.model or DEFAULT_CHECKPOINT)
    changes = {}
    if args.alignment_error_score is not None:
        changes["alignment_error_score"] = args.alignment_error_score
    if args.trim_silence_db is not None:
        changes["trim_silence_db"] = _decibels_or_off("--trim-silence-db", args.trim_silence_db)
    if args.speech_level_dbfs is not None:
        changes["speech_level_dbfs"] = _decibels_or_off("--speech-level-dbfs", args.speech_level_dbfs)
    validation = ClipValidation(**changes)
    voice = model.adapt(clips, method=args.method, steps=args.steps, lr=args.lr, language=args.language,
                        validation=validation, progress=not args.no_progress, base_model=args.base_model,
                        text_column=args.text_column, audio_column=args.audio_column,
                        vocoder_steps=args.vocoder_steps, vocoder_lr=args.vocoder_lr,
                        match_prosody=args.match_prosody, match_rhythm=args.match_rhythm,
                        extra_parameters=args.extra_parameters)
    voice.save_pretrained(args.out)
    size = os.path.getsize(os.path.join(args.out, "voice.safetensors"))
    print(json.dumps({"out": args.out, "method": voice.config.method, "steps": voice.config.steps,
                      "vocoder_steps": voice.config.vocoder_steps, "shots": voice.config.shots,
                      "prosody_match": voice.config.prosody_match, "rhythm_match": voice.config.rhythm_match,
                      "voice_bytes": size}))
    return 0


def _push(args) -> int:
    from .hub import push_to_hub

    kwargs = {"private": args.private or None, "token": args.token, "commit_message": args.commit_message}
    if args.results:
        from .model_cards import read_card_results

        kwargs["results"], evaluation = read_card_results(args.results)
        if evaluation is not None:
            kwargs["evaluation"] = evaluation
    if args.dataset:
        kwargs["datasets"] = args.dataset
    if args.base_model:
        kwargs["base_model"] = args.base_model
    info = push_to_hub(args.path, args.repo_id, **kwargs)
    print(json.dumps({"repo_id": args.repo_id, "commit": getattr(info, "oid", None)}))
    return 0


def _decibels_or_off(option: str, value: str) -> float | None:
    """The value of a dB option that ``off`` turns off (-> None)."""
    if value.strip().lower() == "off":
        return None
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{option} {value!r} is not a number of dB: give a number, or 'off'.") from None


def register(subparsers) -> None:
    """Add the ``adapt`` and ``push`` sub-commands."""
    adapt = subparsers.add_parser("adapt", help="adapt a voice from a few clips -> voice folder")
    adapt.add_argument("--model", default=None, help="base checkpoint folder or Hub id (default: the bundled one)")
    adapt.add_argument("--clips", required=True,
                       help="a folder of audio files with same-named .txt transcripts, or with a metadata.csv "
                       "(audiofolder: file_name and --text-column; or LJSpeech: id|transcript rows), a saved "
                       "dataset or a dataset id")
    adapt.add_argument("--out", required=True, help="voice folder to write")
    adapt.add_argument("--method", default="maml", choices=VOICE_METHODS,
                       help="maml: the meta-learned steps (with the base's learned rates or its support encoder's "
                            "voice when it has them); zero_shot: the support encoder's voice (0 steps unless "
                            "--steps); finetune: Adam from the base, the baseline (default maml)")
    adapt.add_argument("--steps", type=int, default=None,
                       help="gradient steps (default: the meta-learner's, else 5; zero_shot 0)")
    adapt.add_argument("--lr", type=float, default=None,
                       help="step size (default: the meta-learner's, else 0.01; finetune 1e-3)")
    adapt.add_argument("--vocoder-steps", type=int, default=None,
                       help="Adam steps that adapt the neural vocoder to the clips too (default: the model's "
                            "voice_vocoder_steps; 0: off); the voice then holds the vocoder's adapted weights")
    adapt.add_argument("--vocoder-lr", type=float, default=None, help="their learning rate (default: the model's)")
    adapt.add_argument("--match-prosody", action="store_true",
                       help="refit the voice's rate, pitch level and pitch range to the clips after the steps: for "
                            "clips in a speaking style (faster, livelier, flatter)")
    adapt.add_argument("--match-rhythm", action="store_true",
                       help="refit the voice's token durations to the clips after the steps: for a language the "
                            "model never trained on")
    adapt.add_argument("--extra-parameters", nargs="+", default=None, metavar="PATTERN",
                       help="further parameters the steps adapt (fnmatch patterns, e.g. 'decoder.layers.*'): a closer "
                            "voice; the steps then default to 40 and the rate to 1e-3 (docs/voices.md)")
    adapt.add_argument("--language", default=None, help="espeak-ng code of the transcripts (default en-us)")
    adapt.add_argument("--split", default="train", help="dataset split, for a saved dataset or a dataset id "
                       "(default train)")
    adapt.add_argument("--text-column", default="text", help="transcript column of a dataset (default text)")
    adapt.add_argument("--audio-column", default="audio", help="audio column of a dataset (default audio)")
    adapt.add_argument("--base-model", default=None, help="Hub id of the base to record in the voice")
    adapt.add_argument("--alignment-error-score", type=float, default=None,
                       help="refuse clips whose aligner score is above this")
    adapt.add_argument("--trim-silence-db", default=None, metavar="DB",
                       help="cut each clip's leading and trailing audio quieter than this many dB below its loudest "
                            "frame (default 40; 'off' keeps the clips whole)")
    adapt.add_argument("--speech-level-dbfs", default=None, metavar="DBFS",
                       help="scale each clip to this speech level before reading it (e.g. -20; 'off' keeps each "
                            "clip's own level; default: ClipValidation's)")
    adapt.add_argument("--first", type=int, default=None, metavar="N",
                       help="adapt to the first N clips of --clips only (in its order: a metadata file's, else file "
                       "names'); more than 50 clips are refused otherwise (ClipValidation.max_clips)")
    adapt.add_argument("--no-progress", action="store_true", help="no progress bar over the steps")
    adapt.set_defaults(func=guarded(_adapt))

    push = subparsers.add_parser("push", help="push a voice folder or a base checkpoint folder to the Hub")
    push.add_argument("path", help="voice folder (hf-metatts adapt) or base checkpoint folder")
    push.add_argument("repo_id", help="Hub repository, e.g. your-name/my-voice (created if missing)")
    push.add_argument("--private", action="store_true", help="create the repository as private")
    push.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN or the one `hf auth login` saved)")
    push.add_argument("--commit-message", default="Upload with hf-metatts", help="default: Upload with hf-metatts")
    push.add_argument("--results", default=None,
                      help="JSON list of measured results for the card's model-index, or a result of "
                      "benchmarks/default_checkpoint.py (its model_index, and its bars in the card)")
    push.add_argument("--dataset", action="append", default=None, help="training dataset id (repeatable)")
    push.add_argument("--base-model", default=None, help="Hub id of the base, for the card's base_model")
    push.set_defaults(func=guarded(_push))
