"""The alignment search with tokens that may take no frame (stress marks, spaces, punctuation), as the corpus's
phone timings give them, and the config field and model path that turn it on."""

import json

import pytest
import torch
from duration_vectors import duration_vectors
from test_modeling import synthetic_batch
from tiny_models import tiny_config, tiny_model, tiny_processor

from hf_metatts.data.durations import skippable_token_ids
from hf_metatts.modeling_alignment import monotonic_alignment_search


@pytest.fixture(scope="module")
def processor():
    return tiny_processor()


def best_score_by_enumeration(log_probs, skippable, frames):
    """The best monotonic path score over every duration vector ``(N,)`` summing to ``frames`` in which only
    ``skippable`` tokens may take 0 frames. log_probs ``(N, T)``."""
    best = -float("inf")
    for durations in duration_vectors(log_probs.shape[0], frames, skippable):
        owner = [n for n, d in enumerate(durations) for _ in range(d)]
        best = max(best, float(sum(log_probs[n, t] for t, n in enumerate(owner))))
    return best


def path_score(log_probs, path):
    return float((log_probs * path).sum())


@pytest.mark.parametrize("seed", range(6))
def test_skippable_search_finds_the_best_path_that_only_empties_skippable_tokens(seed):
    generator = torch.Generator().manual_seed(seed)
    tokens, frames = 5, 7
    log_probs = torch.randn(1, tokens, frames, generator=generator).mul(2).log_softmax(1)
    skippable = torch.rand(1, tokens, generator=generator) < 0.5
    path = monotonic_alignment_search(log_probs, torch.tensor([tokens]), torch.tensor([frames]), skippable)
    assert (path[0].sum(0) == 1).all()  # each frame to exactly one token
    owner = path[0].argmax(0)
    assert (owner.diff() >= 0).all()  # in order
    durations = path[0].sum(1)
    assert ((durations > 0) | skippable[0]).all()  # only skippable tokens are left empty
    expected = best_score_by_enumeration(log_probs[0], skippable[0].tolist(), frames)
    assert path_score(log_probs[0], path[0]) == pytest.approx(expected, abs=1e-4)


def test_skippable_tokens_take_no_frame_where_the_scores_say_so_at_start_middle_and_end():
    # tokens: " ", "a", "ˈ", "b", "." -- the scores put frames 0-3 on "a" and frames 4-7 on "b" only
    log_probs = torch.full((1, 5, 8), -20.0)
    log_probs[0, 1, :4] = 0.0
    log_probs[0, 3, 4:] = 0.0
    skippable = torch.tensor([[True, False, True, False, True]])
    path = monotonic_alignment_search(log_probs, torch.tensor([5]), torch.tensor([8]), skippable)
    assert path[0].sum(1).tolist() == [0, 4, 0, 4, 0]
    every_token = monotonic_alignment_search(log_probs, torch.tensor([5]), torch.tensor([8]))
    assert (every_token[0].sum(1) >= 1).all()  # the plain search gives each of them a frame


def test_no_skippable_token_gives_the_plain_search_bit_for_bit():
    generator = torch.Generator().manual_seed(3)
    log_probs = torch.randn(3, 9, 30, generator=generator).log_softmax(1)
    text_lengths, mel_lengths = torch.tensor([9, 6, 2]), torch.tensor([30, 17, 4])
    plain = monotonic_alignment_search(log_probs, text_lengths, mel_lengths)
    none_marked = monotonic_alignment_search(log_probs, text_lengths, mel_lengths, torch.zeros(3, 9, dtype=torch.bool))
    assert torch.equal(plain, none_marked)


def test_skippable_search_keeps_each_item_of_a_padded_batch_to_its_own_lengths():
    generator = torch.Generator().manual_seed(1)
    log_probs = torch.randn(2, 6, 12, generator=generator).log_softmax(1)
    skippable = torch.tensor([[False, True, False, True, False, True], [True, False, True, False, True, True]])
    text_lengths, mel_lengths = torch.tensor([6, 4]), torch.tensor([12, 7])
    path = monotonic_alignment_search(log_probs, text_lengths, mel_lengths, skippable)
    for item in range(2):
        alone = monotonic_alignment_search(log_probs[item: item + 1, : text_lengths[item], : mel_lengths[item]],
                                           text_lengths[item: item + 1], mel_lengths[item: item + 1],
                                           skippable[item: item + 1, : text_lengths[item]])
        assert torch.equal(path[item, : text_lengths[item], : mel_lengths[item]], alone[0])
        assert path[item, text_lengths[item]:].sum() == 0 and path[item, :, mel_lengths[item]:].sum() == 0


def test_skippable_token_ids_are_the_tokens_the_timings_give_no_frame(processor):
    ids = set(skippable_token_ids(processor.tokenizer))
    vocab = processor.tokenizer.get_vocab()
    for token in (" ", ",", ".", "?", "ˈ", "ˌ", "ː"):
        assert vocab[token] in ids, token
    for token in ("a", "ə", "ʊ", "ŋ", "<pad>", "<unk>"):
        assert vocab[token] not in ids, token


@pytest.mark.parametrize("bad", [[1, 10_000], [-1], [True], "2,3", [2.0]])
def test_config_refuses_skippable_ids_that_are_not_token_ids(bad):
    with pytest.raises(ValueError, match="aligner_skippable_token_ids"):
        tiny_config(aligner_skippable_token_ids=bad)


def test_model_gives_skippable_tokens_no_frame_only_when_its_config_names_them(processor, tmp_path):
    ids = skippable_token_ids(processor.tokenizer)
    model = tiny_model(aligner_skippable_token_ids=ids)
    batch = synthetic_batch(processor)
    marked = torch.zeros(model.config.vocab_size, dtype=torch.bool)
    marked[ids] = True
    text_mask = batch["attention_mask"].bool()
    on_skippable = marked[batch["input_ids"]] & text_mask
    soft_align = model._soft_align

    def against_skippable(input_ids, *args):
        """The aligner's attention with (almost) no weight on skippable tokens, so the search leaves them empty."""
        soft, logits = soft_align(input_ids, *args)
        soft = soft.masked_fill(marked[input_ids].unsqueeze(1), 1e-9)
        return soft / soft.sum(-1, keepdim=True).clamp(min=1e-12), logits

    model._soft_align = against_skippable
    with torch.no_grad():
        durations = model.compute_durations(**batch)
    assert on_skippable.any() and (durations[on_skippable] == 0).all()
    assert (durations[text_mask & ~on_skippable] >= 1).all()
    assert torch.equal(durations.sum(1), batch["labels_attention_mask"].sum(1))

    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["aligner_skippable_token_ids"] == ids
    model.config.aligner_skippable_token_ids = None
    with torch.no_grad():
        every_token = model.compute_durations(**batch)
    assert (every_token[text_mask] >= 1).all()


def test_the_transcript_check_scores_do_not_depend_on_the_skippable_tokens(processor):
    """`model.adapt`'s transcript check keeps the path where every token takes a frame: its thresholds were set
    on it."""
    torch.manual_seed(0)
    model = tiny_model()
    batch = synthetic_batch(processor)
    with torch.no_grad():
        plain = model.transcript_scores(**batch)
        model.config.aligner_skippable_token_ids = skippable_token_ids(processor.tokenizer)
        skipping = model.transcript_scores(**batch)
        durations = model.compute_durations(**batch)
    for before, after in zip(plain, skipping):
        torch.testing.assert_close(before, after, rtol=0, atol=0)
    assert (durations == 0).any()  # the adaptation's durations do follow the config
