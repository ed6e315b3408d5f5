"""Inner-loop rules side by side from one checkpoint: what each reaches in speaker similarity, speaker
identification and MCD on held-out speakers, and what it does to the support loss it minimises.

Every rule starts from the same voice (the support encoder's, when the checkpoint's meta-learner was trained
with ``zero_shot_start`` or ``--start encoder`` is given; else the model's own) and adapts the same parameter
set on the same 5-shot support clips; only the update differs:

- ``start``: no step at all, the start voice itself (what the other rules are measured against);
- ``learned``: the meta-learner's own rule (its learned rates, one rate for maml, or its Meta-LSTM) for
  ``--steps`` steps;
- ``scaled:S``: the same with every learned rate (or the maml rate) times S (``MetaLearnerHead.scaled``);
- ``adam:LR[:STEPS]``: Adam with learning rate LR (the fine-tuning baseline's update) for STEPS steps
  (default ``--steps``);
- ``sgd:LR[:STEPS]``: plain gradient steps with one learning rate;
- any rule ``+gvW`` (e.g. ``learned+gv0.5``): the same rule with the global-variance term of weight W
  (``hf_metatts.meta.global_variance``) added to its support loss; ``+ctW`` adds the content term
  (``hf_metatts.meta.content``), e.g. ``learned+gv0.3+ct0.1``. A term given this way replaces the
  meta-learner's own terms for ``learned``: write them out;
- any rule ``+pm`` (e.g. ``learned+pm``, also ``start+pm``): after the steps, the voice's rate, pitch level and
  pitch range are matched to the support clips (``model.adapt(..., match_prosody=True)``,
  ``hf_metatts.voice_prosody``).

``--support-durations aligner`` gives every support clip the model's own aligner's durations, as ``model.adapt``
does for a user's clips, in place of the corpus's phone timings (the default, as the bars' harness reads them).

``--identity-encoder DIR --identity-weight W`` adds a speaker-identity term (``hf_metatts.meta.identity``) to
every rule's support loss. ``--parameters PATTERN...`` lets the adam and sgd rules update only part of the
adapted set (the rest keeps its start values; every pattern must match a name of the set);
``--extra-parameters PATTERN...`` lets them update parameters outside it as well (``model.adapt``'s
``extra_parameters``, e.g. ``'decoder.layers.*'``); ``--wer`` adds the recogniser's word error rate (English
speakers only). Per rule the JSON has the means over tasks (similarity, MCD, the support mel L1 after the
steps, how far the adapted set moved, WER, and ``gv_ratio``: the held-out synthesis' per-bin standard deviation
over time of its log-mel, computed from the audio, over that of the real recordings, 1 = as dynamic, below 1 =
flatter), identification pooled over the tasks, the similarity per voice
family (the source before ``:`` in a task name: ``espeak``, ``flite``, ``festival``), and per task how far the
model's aligner puts the support clips' token boundaries from the corpus's phone timings
(``support_alignment_error``: mean absolute frames per token, share of tokens more than 2 frames off)::

    python benchmarks/adaptation_rules.py --checkpoint outputs/default_zero_shot --split validation \\
        --rules learned adam:0.01 adam:0.03 adam:0.05 --out benchmarks/results/adaptation_rules_validation.json
"""

import argparse
import fnmatch
import logging
import platform
import time
from dataclasses import dataclass

import numpy as np
import torch

import hf_metatts
from hf_metatts.evaluation.adaptation_study import add_task_arguments, run_study_main, task_settings
from hf_metatts.evaluation.benchmark import (
    BenchmarkSettings,
    TaskAudio,
    add_support_reading_arguments,
    load_method,
    load_tasks,
    measure,
    pooled_identification,
    set_aligner_search,
    support_batch,
)
from hf_metatts.evaluation.voice_eval import synthesize_texts
from hf_metatts.meta import adapt_parameters
from hf_metatts.meta.content import content_term
from hf_metatts.meta.global_variance import GLOBAL_VARIANCE_FLOOR, global_variance, global_variance_term
from hf_metatts.meta.identity import identity_term, load_identity_encoder
from hf_metatts.meta.learner import encode_support
from hf_metatts.meta.maml import with_fixed_alignment
from hf_metatts.training.hardware import hardware_description
from hf_metatts.voice_adapt import adapted_names_with
from hf_metatts.voice_errors import ExtraParametersError
from hf_metatts.voice_prosody import match_prosody

logger = logging.getLogger("adaptation_rules")
OPTIMIZERS = ("adam", "sgd")
TERM_SUFFIXES = ("gv", "ct")
PROSODY_MATCH_SUFFIX = "pm"
MEAN_KEYS = ("similarity", "mcd", "support_mel_l1", "moved", "gv_ratio")


@dataclass
class Rule:
    """One inner-loop rule: ``optimizer`` is "start" (no step), "learned", "adam" or "sgd"; ``lr`` and ``steps``
    None for learned (``steps`` 0 for start)."""

    name: str
    optimizer: str
    lr: float | None = None
    steps: int | None = None
    global_variance_weight: float = 0.0
    content_weight: float = 0.0
    scale: float = 1.0
    match_prosody: bool = False


def parse_rule(text: str, default_steps: int) -> Rule:
    """``start`` | ``learned`` | ``scaled:S`` | ``adam:LR[:STEPS]`` | ``sgd:LR[:STEPS]``, each but start with
    optional terms ``+gvW`` (global variance) and ``+ctW`` (content), each at most once, and any rule with ``+pm``
    (prosody matching after the steps) -> Rule; SystemExit with the format on a bad one."""
    base, *suffixes = text.split("+")
    match = suffixes.count(PROSODY_MATCH_SUFFIX)
    if match > 1:
        raise SystemExit(f"error: rule {text!r}: '+pm' at most once")
    suffixes = [suffix for suffix in suffixes if suffix != PROSODY_MATCH_SUFFIX]
    weights = {}
    for suffix in suffixes:
        try:
            kind = suffix[:2]
            if kind not in TERM_SUFFIXES or kind in weights:
                raise ValueError
            weights[kind] = float(suffix[2:])
            if not 0 < weights[kind] < float("inf"):
                raise ValueError
        except ValueError:
            raise SystemExit(f"error: rule {text!r}: the suffixes are '+gvW' and '+ctW', each at most once, with a "
                             "weight W > 0, e.g. 'learned+gv0.5+ct0.1'") from None
    rule = _parse_update(base, default_steps)
    if rule.optimizer == "start" and weights:
        raise SystemExit(f"error: rule {text!r}: 'start' takes no step, so no '+gvW' or '+ctW' term")
    rule.name = text
    rule.global_variance_weight, rule.content_weight = weights.get("gv", 0.0), weights.get("ct", 0.0)
    rule.match_prosody = bool(match)
    return rule


def _parse_update(text: str, default_steps: int) -> Rule:
    if text == "start":
        return Rule("start", "start", steps=0)
    if text == "learned":
        return Rule("learned", "learned")
    if text.startswith("scaled:"):
        try:
            scale = float(text[len("scaled:"):])
            if not 0 < scale < float("inf"):
                raise ValueError
        except ValueError:
            raise SystemExit(f"error: rule {text!r}: write 'scaled:S' with a factor S > 0, e.g. 'scaled:1.5'") from None
        return Rule(text, "learned", scale=scale)
    parts = text.split(":")
    try:
        if parts[0] not in OPTIMIZERS or len(parts) not in (2, 3):
            raise ValueError
        lr = float(parts[1])
        steps = int(parts[2]) if len(parts) == 3 else default_steps
        if lr <= 0 or steps < 1:
            raise ValueError
    except ValueError:
        raise SystemExit(f"error: rule {text!r}: write 'start', 'learned', 'scaled:S', 'adam:LR[:STEPS]' or "
                         "'sgd:LR[:STEPS]' with LR > 0 and STEPS >= 1") from None
    return Rule(text, parts[0], lr, steps)


def _tasks_and_audio(settings: BenchmarkSettings, args, processor, rate: int, reuse: dict | None):
    """The tasks of ``args`` and each one's real audio (``TaskAudio``), from ``reuse`` when it holds them."""
    key = (args.corpus, args.split, tuple(args.languages or ()), tuple(args.tasks or ()), args.shots, args.heldout,
           args.seed, bool(args.wer), rate)
    if reuse is not None and key in reuse:
        return reuse[key]
    tasks = load_tasks(settings)
    loaded = tasks, {t.name: TaskAudio(t, processor, rate, with_wer=args.wer) for t in tasks}
    if reuse is not None:
        reuse[key] = loaded
    return loaded


def updated_names(model, head, names: list[str], parameters: list[str] | None, extra_parameters: list[str] | None,
                  rules: list[Rule]) -> list[str]:
    """What the adam and sgd rules update: the names of the adapted set ``names`` that ``parameters`` (fnmatch
    patterns; None: all of them) match, followed by the parameters outside it that ``extra_parameters`` name (as
    ``model.adapt(..., extra_parameters=...)`` resolves them).

    SystemExit with what to do when a ``parameters`` pattern matches no name of the adapted set (a parameter outside
    it belongs in ``extra_parameters``), when an ``extra_parameters`` pattern matches nothing or names what the
    steps cannot adapt, or when a ``learned`` rule would be run with extra parameters (its rule knows only its set).
    """
    updated = list(names)
    if parameters:
        unmatched = [p for p in parameters if not any(fnmatch.fnmatchcase(n, p) for n in names)]
        if unmatched:
            raise SystemExit(f"error: --parameters {unmatched} match no name of the adapted set ({names}); to adapt "
                             "parameters outside it as well, name them with --extra-parameters")
        updated = [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in parameters)]
        outside = [n for n, _ in model.named_parameters() if n not in names]
        for pattern in parameters:
            reached = [n for n in outside if fnmatch.fnmatchcase(n, pattern)]
            if reached:
                logger.warning("--parameters %r also matches %d parameters outside the adapted set (%s, ...); "
                               "--parameters only chooses within the set, so they keep their values: name them with "
                               "--extra-parameters to adapt them", pattern, len(reached), reached[0])
    if not extra_parameters:
        return updated
    learned = [rule.name for rule in rules if rule.optimizer == "learned"]
    if learned:
        raise SystemExit(f"error: --extra-parameters holds for the adam and sgd rules only; the rules {learned} step "
                         "with the meta-learner's own rule, which knows only its adapted set: run them separately")
    try:  # checked as for one-rate steps (what adam and sgd take) with at least one step (every such rule has)
        with_extra = adapted_names_with(model, "maml", head, 1, list(extra_parameters))
    except ExtraParametersError as error:
        raise SystemExit(f"error: --extra-parameters: {error}") from None
    return updated + [name for name in with_extra if name not in names]


def adapt_with(rule: Rule, model, head, support: dict, start: dict, steps: int, updated: list[str],
               loss_term=None) -> dict:
    """The adapted set after ``rule`` from ``start`` (``{name: tensor}`` for the whole adapted set); an adam or
    sgd rule updates only the names in ``updated``, the others keep their start values. ``loss_term`` is added
    to the support loss (``adapt_parameters``). The start rule returns ``start`` itself."""
    if rule.optimizer == "start":
        return dict(start)
    if rule.optimizer == "learned":
        head = head if rule.scale == 1.0 else head.scaled(rule.scale)
        return adapt_parameters(model, support, method=head.config.method, steps=steps, meta_learner=head,
                                init=start, loss_term=loss_term)
    method = "finetune" if rule.optimizer == "adam" else "maml"
    moved = adapt_parameters(model, support, method=method, steps=rule.steps, lr=rule.lr, init=start,
                             adapted_names=updated, loss_term=loss_term)
    return {**start, **moved}


def combined_term(*terms):
    """One ``loss_term`` adding the given ones (None entries skipped); None when there is none."""
    terms = [t for t in terms if t is not None]
    if not terms:
        return None
    return terms[0] if len(terms) == 1 else (lambda out, batch: sum(t(out, batch) for t in terms))


def heldout_gv_ratio(waves: list[np.ndarray], audio: TaskAudio, processor, rate: int) -> float:
    """Mean over utterances and mel bins of sd_t(log-mel of the synthesis) / sd_t(log-mel of the recording),
    both computed from audio (at ``rate``) with the model's feature extractor."""
    def spread(wave: np.ndarray) -> torch.Tensor:
        mels = np.asarray(processor.feature_extractor(wave, sampling_rate=rate)["input_features"][0])
        return global_variance(torch.as_tensor(mels, dtype=torch.float32).unsqueeze(0))

    ratios = []
    for synthesised, real in zip(waves, audio.real):
        ours, theirs = spread(synthesised), spread(real)
        ratios.append(float((ours / theirs.clamp_min(GLOBAL_VARIANCE_FLOOR)).mean()))
    return float(np.mean(ratios))


def support_mel_l1(model, params: dict, support: dict) -> float:
    """Frame mel L1 of the support clips (with their ``durations``) under ``params`` (the loss's mel term)."""
    with torch.no_grad():
        out = torch.func.functional_call(model, params, args=(), kwargs=dict(support), strict=False)
    return float(out.losses["mel"])


def alignment_error(model, support: dict) -> dict | None:
    """How far the model's aligner puts the support clips' token boundaries from the corpus's phone timings:
    ``{"mean_abs_frames", "tokens_off_by_more_than_2"}`` over the valid tokens of ``support`` (a collated batch
    with the timings' ``durations`` ``(B, N)``), or None when the batch has no timings."""
    timings = support.get("durations")
    if timings is None:
        return None
    batch = {key: value for key, value in support.items() if key != "durations"}
    with torch.no_grad():
        aligned = model.compute_durations(**batch)
    mask = batch["attention_mask"].bool() if batch.get("attention_mask") is not None else torch.ones_like(
        timings, dtype=torch.bool)
    off = (aligned - timings).abs()[mask].float()
    return {"mean_abs_frames": float(off.mean()), "tokens_off_by_more_than_2": float((off > 2).float().mean())}


def run(args, reuse: dict | None = None) -> dict:
    """Adapt and measure every rule of ``args``; ``reuse`` (a dict the caller keeps between calls, e.g. one per
    candidate checkpoint) holds the tasks and their real audio and measurements, so that they are loaded once
    for every call with the same corpus, split, speakers, shots, held-out sentences, seed and metrics."""
    settings = task_settings(args, {"zero_shot": args.checkpoint}, args.steps, ["similarity", "mcd", "identification"])
    model, processor, head, reason = load_method("zero_shot", args.checkpoint)
    if reason:
        raise SystemExit(f"error: {reason}")
    set_aligner_search(model, processor, args.aligner_search, args.aligner_duration_weight)
    if head is None:
        raise SystemExit(f"error: {args.checkpoint} has no meta-learner (meta_learner_config.json): the rules need "
                         "its adapted parameter set and, for 'learned', its rule")
    rules = [parse_rule(text, args.steps) for text in args.rules]
    names = head.config.adapted_parameter_names
    updated = updated_names(model, head, names, args.parameters, args.extra_parameters, rules)
    extra = [name for name in updated if name not in names]
    encoder_start = args.start == "encoder" or (args.start == "auto" and head.config.zero_shot_start)
    loss_term = None
    if args.identity_weight:
        if not args.identity_encoder:
            raise SystemExit("error: --identity-weight needs --identity-encoder DIR "
                             "(one written by hf-metatts train-identity-encoder)")
        loss_term = identity_term(load_identity_encoder(args.identity_encoder), args.identity_weight)
    rate = model.config.sampling_rate
    tasks, audios = _tasks_and_audio(settings, args, processor, rate, reuse)
    metrics = ["mcd", "wer"] if args.wer else ["mcd"]
    own = dict(model.named_parameters())
    alignment = {}
    results = {}
    for rule in rules:
        torch.manual_seed(args.seed)
        started = time.perf_counter()
        per_task, trials = {}, {}
        for task in tasks:
            # durations once per task: adaptation and the mel readout reuse them (the aligner never adapts)
            support = support_batch(task.pool[: args.shots], processor)
            if task.name not in alignment:
                alignment[task.name] = alignment_error(model, support)
            if args.support_durations == "aligner":
                support.pop("durations", None)
            support = with_fixed_alignment(model, [support])[0]
            start = {n: own[n].detach().clone() for n in names + extra}
            if encoder_start:
                with torch.no_grad():
                    start.update(encode_support(model, [support], start))
            term = combined_term(loss_term, global_variance_term(rule.global_variance_weight)
                                 if rule.global_variance_weight else None,
                                 content_term(model, rule.content_weight) if rule.content_weight else None)
            params = adapt_with(rule, model, head, support, start, args.steps, updated, term)
            if rule.match_prosody:
                params = match_prosody(model, params, [support])[0]
            waves = synthesize_texts(model, processor.tokenizer, audios[task.name].texts, params,
                                     audios[task.name].languages)
            values, trials[task.name] = measure(waves, audios[task.name], rate, metrics)
            values["gv_ratio"] = heldout_gv_ratio(waves, audios[task.name], processor, rate)
            values["support_mel_l1"] = support_mel_l1(model, params, support)
            values["moved"] = float(torch.sqrt(sum(((params[n] - start[n]) ** 2).sum() for n in start)))
            per_task[task.name] = values
        accuracy, candidates, _ = pooled_identification(trials, audios)
        families = sorted({name.split(":")[0] for name in per_task})
        results[rule.name] = {
            "optimizer": rule.optimizer, "lr": rule.lr, "global_variance_weight": rule.global_variance_weight,
            "content_weight": rule.content_weight, "rate_scale": rule.scale, "match_prosody": rule.match_prosody,
            "steps": rule.steps if rule.steps is not None else args.steps,
            "mean": {key: float(np.mean([v[key] for v in per_task.values()]))
                     for key in MEAN_KEYS + (("wer",) if args.wer else ())},
            "identification": accuracy, "identification_candidates": candidates,
            "similarity_by_family": {f: float(np.mean([v["similarity"] for n, v in per_task.items()
                                                        if n.split(":")[0] == f])) for f in families},
            "per_task": per_task,
            "seconds": round(time.perf_counter() - started, 1),
        }
        mean = results[rule.name]["mean"]
        logger.info("%s: similarity %.4f, identification %.3f, support mel L1 %.4f, gv ratio %.3f%s (%.0f s)",
                    rule.name, mean["similarity"], accuracy, mean["support_mel_l1"], mean["gv_ratio"],
                    f", wer {mean['wer']:.3f}" if args.wer else "", results[rule.name]["seconds"])
    return {
        "checkpoint": args.checkpoint, "split": args.split, "tasks": [t.name for t in tasks], "shots": args.shots,
        "start": "encoder" if encoder_start else "model", "updated_by_adam_and_sgd": updated,
        "extra_parameters": extra,
        "support_durations": args.support_durations,
        "aligner_duration_weight": model.config.aligner_duration_weight,
        "aligner_skips_marks": bool(model.config.aligner_skippable_token_ids),
        "support_alignment_error": alignment if any(v is not None for v in alignment.values()) else None,
        "support_identity_term": ({"encoder": args.identity_encoder, "weight": args.identity_weight}
                                  if loss_term is not None else None),
        "recordings_wer": (float(np.mean([a.real_wer for a in audios.values()])) if args.wer else None),
        "results": results,
        "machine": {**hardware_description(), "platform": platform.platform()},
        "library_version": hf_metatts.__version__,
        "command": getattr(args, "command", None),
    }


def plot(result: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rules = list(result["results"])
    families = sorted({f for r in result["results"].values() for f in r["similarity_by_family"]})
    width = 0.8 / max(1, len(families))
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(rules), 3.2))
    for index, family in enumerate(families):
        values = [result["results"][r]["similarity_by_family"].get(family, np.nan) for r in rules]
        ax.bar(np.arange(len(rules)) + index * width, values, width, label=family)
    ax.set_xticks(np.arange(len(rules)) + width * (len(families) - 1) / 2, rules)
    ax.set_ylabel("speaker similarity")
    ax.set_ylim(0.4, 0.9)
    ax.set_title(f"{result['split']} speakers, {result['shots']}-shot, start: {result['start']}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    """The script's arguments (also how ``checkpoint_soup.py`` sets up its validation runs)."""
    parser = argparse.ArgumentParser(prog="adaptation_rules", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="a meta-trained checkpoint folder")
    add_task_arguments(parser, split="test", heldout=3)
    parser.add_argument("--rules", nargs="+", default=["learned", "adam:0.03"])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--parameters", nargs="*", default=None, metavar="PATTERN",
                        help="adam/sgd rules update only the adapted names matching these (fnmatch; each must match "
                        "one); default: all")
    parser.add_argument("--extra-parameters", nargs="+", default=None, metavar="PATTERN",
                        help="adam/sgd rules also update these parameters outside the adapted set (fnmatch, as "
                        "model.adapt's extra_parameters), e.g. 'decoder.layers.*'")
    parser.add_argument("--wer", action="store_true", help="also the ASR word error rate (English speakers)")
    parser.add_argument("--start", choices=("auto", "encoder", "model"), default="auto")
    parser.add_argument("--identity-encoder", default=None, help="speaker encoder of the support identity term")
    parser.add_argument("--identity-weight", type=float, default=0.0,
                        help="add this weight x (1 - cos) of --identity-encoder's embeddings of the predicted and the "
                        "real support mels to every rule's support loss (0: the model's loss alone)")
    add_support_reading_arguments(parser)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/adaptation_rules.json")
    return parser


def main(argv=None) -> None:
    run_study_main(build_parser(), run, plot, argv)


if __name__ == "__main__":
    main()
