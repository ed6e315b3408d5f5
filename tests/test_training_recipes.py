"""The training recipes (``scripts/train_*.sh``) name configs that exist and parse, and each step
reads only what an earlier step of the recipe writes (or what the recipe checks for first)."""

import glob
import json
import re

import pytest

from hf_metatts.meta.cli import parse_config

RECIPES = sorted(glob.glob("scripts/train_*.sh"))
CONFIG = re.compile(r"--config\s+(examples/configs/[\w.-]+\.json)")
WRITTEN = re.compile(r"--out\s+(\S+)")
REQUIRED = re.compile(r"\[ ! -d (\S+) \]")


def recipe_steps(path: str) -> list[tuple[str, str]]:
    """``("config", path)`` and ``("out", folder)`` in the order the recipe runs them (comments skipped)."""
    text = "\n".join(line for line in open(path, encoding="utf-8").read().splitlines()
                     if not line.lstrip().startswith("#"))
    found = [(m.start(), "config", m.group(1)) for m in CONFIG.finditer(text)]
    found += [(m.start(), "out", m.group(1)) for m in WRITTEN.finditer(text)]
    found += [(m.start(), "out", m.group(1)) for m in REQUIRED.finditer(text)]
    return [(kind, value) for _, kind, value in sorted(found)]


def test_there_are_recipes():
    assert "scripts/train_default_checkpoint.sh" in RECIPES
    assert "scripts/train_speaker_embedding_checkpoint.sh" in RECIPES
    assert "scripts/train_plain_start_checkpoints.sh" in RECIPES


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_configs_parse_and_chain(recipe):
    steps = recipe_steps(recipe)
    configs = [value for kind, value in steps if kind == "config"]
    assert configs, f"{recipe} runs no meta-train config"
    available: set[str] = set()
    for kind, value in steps:
        if kind == "out":
            available.add(value.rstrip("/"))
            continue
        model_args, data_args, training_args = parse_config(value)
        inputs = [model_args.model_name_or_path, data_args.dataset_path,
                  model_args.speaker_embedding_voice_encoder, training_args.identity_encoder]
        for needed in inputs:
            if needed and needed.startswith(("outputs/", "data/")):
                assert needed.rstrip("/") in available, (
                    f"{recipe}: {value} reads {needed}, which no earlier step of the recipe writes")
        available.add(training_args.output_dir.rstrip("/"))


def test_speaker_embedding_recipe_continues_its_own_runs():
    """Each continuation in the speaker-embedding chain starts from the run just before it."""
    configs = [value for kind, value in recipe_steps("scripts/train_speaker_embedding_checkpoint.sh")
               if kind == "config"]
    loaded = [json.load(open(path, encoding="utf-8")) for path in configs]
    for previous, current in zip(loaded, loaded[1:]):
        assert current["model_name_or_path"] == previous["output_dir"]
    assert loaded[-1]["inner_optimizer"] == "adam"


@pytest.mark.parametrize("config", sorted(glob.glob("examples/configs/*.json")))
def test_every_example_config_parses(config):
    """Configs outside the recipes (runs reported as tried in BENCHMARKS.md) stay runnable too."""
    _, _, training_args = parse_config(config)
    assert training_args.output_dir.startswith("outputs/"), f"{config} writes outside outputs/"
