"""Does the neural vocoder lose the voice, and does adapting the vocoder to the speaker's support clips give it back?

Each held-out speaker is adapted once (the checkpoint's own adaptation, as the bar harness runs it). The adapted
model then reads its 5 support clips on their recorded durations and pitch (teacher forcing): those log-mels and the
support recordings are ground-truth-aligned pairs of the speaker (``hf_metatts.training.vocoder_aligned``), on which
a copy of the checkpoint's vocoder takes a few Adam steps of the vocoder's training loss (log-mel L1 + multi-
resolution STFT) on random segments. The held-out sentences are synthesised once and vocoded three ways:

- ``griffin_lim``: Griffin-Lim, as the bars hear every method;
- ``vocoder``: the checkpoint's vocoder, what ``model.adapt`` users hear;
- ``vocoder_adapted_<parameters>_<steps>_lr<rate>``: the copy adapted on the support pairs (one variant per
  parameter set, step count and step size asked for).

Per variant the JSON has the mean speaker similarity, the identification among all tasks (and how many misses stay
within a recorded voice's pitch/formant family), the MCD (unless ``--no-mcd``) and optionally the WER; per task
the vocoder loss on the support pairs before and after its steps::

    python benchmarks/vocoder_voice_adaptation.py --checkpoint hf_metatts/checkpoints/default \\
        --vocoder-steps 25 50 --vocoder-parameters all norms --wer \\
        --out benchmarks/results/vocoder_voice_adaptation_test.json
"""

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.pitch_level import summarise_variants  # noqa: E402
from hf_metatts.evaluation.adaptation_study import (  # noqa: E402
    add_study_arguments,
    add_variant_wers,
    load_study,
    plot_variants,
    run_study_main,
    study_record,
)
from hf_metatts.evaluation.speaker import embed_utterances  # noqa: E402
from hf_metatts.voice_vocoder import (  # noqa: E402
    VocoderAdaptation,
    VocoderAdaptationError,
    adapt_vocoder,
    check_adaptable,
    support_pairs,
)

logger = logging.getLogger("vocoder_voice_adaptation")
#: Each named set: the `VocoderAdaptation` fields it sets, its parameters (fnmatch patterns of
#: ``ISTFTVocoder.named_parameters``) and any flag it turns.
PARAMETER_SETS = {
    "all": {"parameters": ("*",)},
    "norms": {"parameters": ("norm.*", "final_norm.*", "blocks.*.norm.*", "blocks.*.gamma")},
    "head": {"parameters": ("head.*", "final_norm.*")},
    "eq": {"parameters": ("head.bias",)},  # a fixed per-frequency gain and phase offset: the voice as an equaliser
    # as "head", the output layer's phase rows kept
    "head_magnitude": {"parameters": ("head.*", "final_norm.*"), "adapt_phase": False},
    # the output layer's magnitude rows only: the phase exactly the vocoder's own
    "magnitude": {"parameters": ("head.*",), "adapt_phase": False},
    # as "head", on segments of whole-clip hidden states
    "head_clip": {"parameters": ("head.*", "final_norm.*"), "clip_context": True},
}


def set_adaptation(set_name: str, **settings) -> VocoderAdaptation:
    """The `VocoderAdaptation` of the named set of :data:`PARAMETER_SETS` with the other ``settings`` (steps,
    learning rate, batch, segment length, seed)."""
    if set_name not in PARAMETER_SETS:
        raise VocoderAdaptationError(
            f"Unknown vocoder parameter set {set_name!r}: choose from {sorted(PARAMETER_SETS)}.")
    return VocoderAdaptation(**settings, **PARAMETER_SETS[set_name])


def voiced_vocoder(vocoder: torch.nn.Module, values: dict[str, torch.Tensor]):
    """A function log-mel ``(B, T, M)`` -> waveform ``(B, T * hop)``: ``vocoder`` speaking with the adapted
    ``values`` (``{"vocoder.<name>": tensor}``) in place of its own."""
    from torch.func import functional_call

    own = {name[len("vocoder."):]: value for name, value in values.items()}
    return lambda log_mel: functional_call(vocoder, own, (log_mel,), strict=False)


def variant_name(set_name: str, steps: int, lr: float) -> str:
    return f"vocoder_adapted_{set_name}_{steps}_lr{lr:g}"


def run(args) -> dict:
    from hf_metatts.evaluation.mcd import mel_cepstral_distortion
    from hf_metatts.modeling_vocoder import GriffinLimVocoder

    if any(lr <= 0 for lr in args.vocoder_lr) or any(s < 1 for s in args.vocoder_steps):
        raise VocoderAdaptationError("--vocoder-lr must be positive and every --vocoder-steps at least 1.")
    study = load_study(args, eval_metrics=["similarity", "wer"] if args.wer else ["similarity"])
    model, audios, rate, tokenizer = study.model, study.audios, study.rate, study.processor.tokenizer
    check_adaptable(model)
    griffin_lim = GriffinLimVocoder(model.config)
    adapted_variants = [(s, n, lr) for s in args.vocoder_parameters for n in sorted(set(args.vocoder_steps))
                        for lr in args.vocoder_lr]
    variants = ["griffin_lim", "vocoder"] + [variant_name(*v) for v in adapted_variants]
    similarity = {v: {} for v in variants}
    embeddings = {v: {} for v in variants}
    waves_by_variant = {v: {} for v in variants}
    support_losses, vocoder_seconds = {}, []
    started = time.perf_counter()
    for task in study.tasks:
        audio = audios[task.name]
        support = study.support(task, args.shots)
        params = study.adapt(support, args)
        pairs = support_pairs(model, params, [support], audio.pool_audio[: args.shots])
        vocoders = {"griffin_lim": griffin_lim, "vocoder": model.vocoder}
        support_losses[task.name] = {}
        for set_name, steps, lr in adapted_variants:
            name = variant_name(set_name, steps, lr)
            adaptation = set_adaptation(set_name, steps=steps, learning_rate=lr, batch_size=args.vocoder_batch_size,
                                        segment_frames=args.vocoder_segment_frames, seed=args.seed)
            torch.manual_seed(args.seed)
            values, losses = adapt_vocoder(model.vocoder, pairs, adaptation)
            vocoders[name] = voiced_vocoder(model.vocoder, values)
            vocoder_seconds.append(losses["seconds"])
            support_losses[task.name][name] = losses
        waves = {v: [] for v in variants}
        for text, language in zip(audio.texts, audio.languages):
            inputs = tokenizer(text, return_tensors="pt", **({"language": language} if language else {}))
            with torch.no_grad():
                output = model(input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask"),
                               voice=params)
                for variant, vocoder in vocoders.items():
                    waves[variant].append(vocoder(output.spectrogram)[0].detach().float().numpy())
        for variant in variants:
            waves_by_variant[variant][task.name] = waves[variant]
            embeddings[variant][task.name] = embed_utterances(waves[variant], rate)
            similarity[variant][task.name] = float(np.mean(np.sum(embeddings[variant][task.name] * audio.real_emb, 1)))
        logger.info("%s: similarity %s", task.name, {v: round(similarity[v][task.name], 3) for v in variants})
    results = summarise_variants(embeddings, similarity, audios, log=logger)
    for variant in variants if args.mcd else ():
        per_task = {name: float(np.mean(mel_cepstral_distortion(audios[name].real, waves_by_variant[variant][name],
                                                                 sampling_rate=rate))) for name in audios}
        results[variant]["mcd"] = float(np.mean(list(per_task.values())))
        results[variant]["mcd_per_task"] = per_task
    if args.wer:
        add_variant_wers(results, waves_by_variant, audios, rate, logger)
    return {**study_record(args, study), "vocoder_lr": args.vocoder_lr,
            "vocoder_steps": sorted(set(args.vocoder_steps)),
            "vocoder_parameters": args.vocoder_parameters, "vocoder_batch_size": args.vocoder_batch_size,
            "vocoder_segment_frames": args.vocoder_segment_frames,
            "vocoder_adaptation_seconds_median": float(np.median(vocoder_seconds)) if vocoder_seconds else None,
            "support_losses": support_losses, "results": results, "seconds": round(time.perf_counter() - started, 1)}


def plot(result: dict, path: str) -> None:
    plot_variants(result, ("similarity", "identification"),
                  f"{result['split']} speakers: the vocoder adapted to the support clips", path, ylim=(0.0, 1.0))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="vocoder_voice_adaptation", description=__doc__.split("\n")[0])
    add_study_arguments(parser, "benchmarks/results/vocoder_voice_adaptation.json")
    parser.add_argument("--vocoder-steps", type=int, nargs="+", default=[25], help="Adam steps of the vocoder copy")
    parser.add_argument("--vocoder-parameters", nargs="+", default=["all"], choices=sorted(PARAMETER_SETS))
    parser.add_argument("--vocoder-lr", type=float, nargs="+", default=[1e-4], help="Adam step sizes to try")
    parser.add_argument("--vocoder-batch-size", type=int, default=8)
    parser.add_argument("--vocoder-segment-frames", type=int, default=32)
    parser.add_argument("--wer", action="store_true", help="also measure each variant's WER (PocketSphinx)")
    parser.add_argument("--no-mcd", dest="mcd", action="store_false",
                        help="skip the mel-cepstral distortion (minutes for a grid of many variants)")
    run_study_main(parser, run, plot, argv)


if __name__ == "__main__":
    main()
