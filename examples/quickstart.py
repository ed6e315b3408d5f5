"""The main job: adapt the bundled meta-trained checkpoint to a speaker it never heard, from 5 clips.

    python examples/quickstart.py --out outputs/quickstart

1. takes 5 clips (with transcripts) of a held-out test speaker: the flite ``awb`` voice (a voice built from a
   real speaker's recordings) of the offline corpus's test split (``--preset tiny``: built in seconds); no
   clip of this speaker was seen in training;
2. loads the bundled checkpoint (``hf_metatts.DEFAULT_CHECKPOINT``: meta-trained acoustic model + neural
   vocoder, offline) and adapts it with ``model.adapt`` (the support encoder's voice, then the checkpoint's
   meta-trained inner rule for ``--adapt-steps`` steps); saves the voice (``voice/``, kilobytes);
3. synthesises the speaker's held-out sentences before and after adaptation and writes the WAVs next to the
   speaker's own recordings;
4. measures, on those held-out sentences, speaker similarity to the speaker's real recordings (resemblyzer),
   word error rate (pocketsphinx) before/after adaptation and on the recordings, and writes ``report.json``
   and ``adaptation_curve.png``.

``--extra-parameters 'decoder.layers.*'`` adapts the decoder's layers too (40 steps of 1e-3 unless
``--adapt-steps``/``--adapt-lr`` say otherwise; docs/voices.md). ``--model DIR`` adapts another checkpoint;
``--train-tiny EPISODES`` meta-trains a tiny model on the tiny corpus first (about a minute) and adapts that
instead, to exercise the whole training pipeline.
"""

import argparse
import dataclasses
import json
import logging
import time
from pathlib import Path

import numpy as np
import soundfile
import torch

import hf_metatts
from hf_metatts.data import build_corpus, decode_audio
from hf_metatts.data.presets import get_preset
from hf_metatts.meta.cli import parse_config, run_meta_training

logger = logging.getLogger("quickstart")

PREFERRED_TARGETS = ("flite:awb", "flite:slt", "flite:rms")
SHOTS = 5


def build_or_reuse_corpus(out: Path, preset_name: str, utterances: int) -> Path:
    """The offline corpus of ``preset_name`` with at least ``utterances`` clips per speaker (built once)."""
    preset = get_preset(preset_name)
    preset = dataclasses.replace(preset, utterances_per_task=max(preset.utterances_per_task, utterances))
    corpus_dir = out / f"corpus-{preset_name}-{preset.utterances_per_task}"
    if not (corpus_dir / "dataset_dict.json").exists():
        build_corpus(str(corpus_dir), preset=preset)
    return corpus_dir


def meta_train(corpus_dir: Path, out: Path, steps: int, config_path: str, retrain: bool) -> Path:
    """Meta-train the tiny config on the tiny corpus for ``steps`` episodes (``--train-tiny``)."""
    model_args, data_args, training_args = parse_config(config_path)
    model_dir = out / "model"
    if (model_dir / "model.safetensors").exists() and not retrain:
        logger.info("reusing the meta-trained model in %s (pass --retrain to train again)", model_dir)
        return model_dir
    data_args.dataset_path = str(corpus_dir)
    training_args.output_dir = str(model_dir)
    training_args.max_steps = steps
    training_args.eval_steps = max(1, steps // 2)
    training_args.save_steps = steps
    training_args.logging_steps = max(1, steps // 6)
    training_args.warmup_steps = max(1, steps // 10)
    training_args.report_to = []
    run_meta_training(model_args, data_args, training_args)
    return model_dir


def pick_target(test_split) -> str:
    speakers = list(dict.fromkeys(test_split["speaker_id"]))
    for name in PREFERRED_TARGETS:
        if name in speakers:
            return name
    return speakers[0]


def synthesize(model, tokenizer, texts, voice=None) -> list[np.ndarray]:
    waves = []
    for text in texts:
        with torch.no_grad():
            output = model(**tokenizer(text, return_tensors="pt"), voice=voice)
        waves.append(output.waveform[0].numpy())
    return waves


def measure(waves, references, texts, rate) -> dict:
    from hf_metatts.evaluation import asr_word_error_rate, speaker_similarity

    similarity = speaker_similarity(references, waves, sampling_rate=rate, references_sampling_rate=rate)
    wer = asr_word_error_rate(waves, texts, sampling_rate=rate)
    return {"speaker_similarity": float(np.mean(similarity)), "wer": float(wer.wer)}


def plot_curve(curve: list[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot(range(1, len(curve) + 1), curve, marker="o")
    ax.set_xlabel("adaptation step")
    ax.set_ylabel("support loss")
    ax.set_title("5-shot adaptation to a held-out speaker")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="outputs/quickstart")
    parser.add_argument("--model", default=None,
                        help="checkpoint to adapt (default: the bundled hf_metatts.DEFAULT_CHECKPOINT)")
    parser.add_argument("--preset", default="tiny", help="corpus preset of the target clips (tiny: seconds)")
    parser.add_argument("--train-tiny", type=int, default=0, metavar="EPISODES",
                        help="meta-train a tiny model for EPISODES episodes and adapt it instead")
    parser.add_argument("--config", default="examples/configs/tiny_maml.json", help="config of --train-tiny")
    parser.add_argument("--retrain", action="store_true", help="with --train-tiny: train again even if trained")
    parser.add_argument("--heldout", type=int, default=5, help="held-out sentences of the target to measure on")
    parser.add_argument("--adapt-steps", type=int, default=None,
                        help="adaptation steps (default: the checkpoint's own, 5; 40 with --extra-parameters)")
    parser.add_argument("--adapt-lr", type=float, default=None,
                        help="inner learning rate (default: the checkpoint's own inner rule; 1e-3 with "
                             "--extra-parameters)")
    parser.add_argument("--extra-parameters", nargs="+", default=None, metavar="PATTERN",
                        help="further parameters the steps adapt, e.g. 'decoder.layers.*' (docs/voices.md, \"A closer "
                             "voice: the decoder's layers too\": 40 steps instead of 5)")
    parser.add_argument("--vocoder-steps", type=int, default=None,
                        help="also adapt the neural vocoder to the clips in this many steps (docs/voices.md; "
                             "default: the checkpoint's own, 15 for the bundled one)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.manual_seed(0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    corpus_dir = build_or_reuse_corpus(out, args.preset, SHOTS + args.heldout)
    if args.train_tiny:
        model_dir = meta_train(corpus_dir, out, args.train_tiny, args.config, args.retrain)
    else:
        model_dir = args.model or hf_metatts.DEFAULT_CHECKPOINT
    train_seconds = time.perf_counter() - started

    from datasets import Audio, load_from_disk

    test = load_from_disk(str(corpus_dir))["test"].cast_column("audio", Audio(decode=False))
    target = pick_target(test)
    rows = [row for row in test if row["speaker_id"] == target]
    support_rows, heldout_rows = rows[:SHOTS], rows[SHOTS: SHOTS + args.heldout] or rows[-1:]
    logger.info("target speaker %s: %d support clips, %d held-out sentences", target, len(support_rows),
                len(heldout_rows))

    model = hf_metatts.MetaTTSForTextToSpeech.from_pretrained(model_dir).eval()
    processor = hf_metatts.MetaTTSProcessor.from_pretrained(model_dir)
    rate = model.config.sampling_rate
    clips = [(decode_audio(row["audio"], rate), row["text"]) for row in support_rows]
    curve = []
    adapt_started = time.perf_counter()
    voice = model.adapt(clips, method="maml", steps=args.adapt_steps, lr=args.adapt_lr, sampling_rate=rate,
                        progress=False, callback=lambda step, total, loss: curve.append(loss),
                        vocoder_steps=args.vocoder_steps, extra_parameters=args.extra_parameters)
    adapt_seconds = time.perf_counter() - adapt_started
    voice.save_pretrained(out / "voice")  # loads with pipeline("text-to-speech", model=out / "voice")

    texts = [row["text"] for row in heldout_rows]
    references = [decode_audio(row["audio"], rate) for row in heldout_rows]
    before = synthesize(model, processor.tokenizer, texts)
    after = synthesize(model, processor.tokenizer, texts, voice=voice)
    for index, (b, a, r) in enumerate(zip(before, after, references)):
        soundfile.write(out / f"heldout_{index}_base.wav", b, rate)
        soundfile.write(out / f"heldout_{index}_adapted.wav", a, rate)
        soundfile.write(out / f"heldout_{index}_target.wav", r, rate)

    report = {
        "target_speaker": target,
        "shots": len(support_rows),
        "adaptation": {"method": voice.config.method, "steps": voice.config.steps, "lr": voice.config.learning_rate,
                       "extra_parameters": args.extra_parameters,
                       "vocoder_steps": voice.config.vocoder_steps,
                       "seconds": round(adapt_seconds, 3),
                       "seconds_measured_as": "one call, the first of this process (one-time setup included); "
                                              "benchmarks/voice_adaptation_speed.py gives the median of warm calls",
                       "support_loss_curve": curve,
                       "voice_dir": str(out / "voice")},
        "heldout_sentences": texts,
        "before_adaptation": measure(before, references, texts, rate),
        "after_adaptation": measure(after, references, texts, rate),
        "target_recordings": {"wer": measure(references, references, texts, rate)["wer"]},
        "model_dir": str(model_dir),
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    if args.train_tiny:
        report["meta_training"] = {"episodes": args.train_tiny, "seconds": round(train_seconds, 1),
                                   "note": "tiny model meta-trained for about a minute: the numbers measure the "
                                           "pipeline, not the quality of the bundled checkpoint"}
    (out / "report.json").write_text(json.dumps(report, indent=2))
    plot_curve(curve, out / "adaptation_curve.png")
    logger.info("similarity to %s: %.3f before, %.3f after adaptation; WER %.2f before, %.2f after (target's own "
                "recordings: %.2f)", target, report["before_adaptation"]["speaker_similarity"],
                report["after_adaptation"]["speaker_similarity"], report["before_adaptation"]["wer"],
                report["after_adaptation"]["wer"], report["target_recordings"]["wer"])
    logger.info("wrote %s", out / "report.json")
    return report


if __name__ == "__main__":
    main()
