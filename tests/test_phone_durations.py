"""Token durations from phone timings (hf_metatts.data.durations) and training with them."""

import numpy as np
import pytest
import torch
from tiny_models import tiny_model, tiny_processor

from hf_metatts.data.durations import PhoneTimingError, group_tokens, phone_frame_counts, token_durations
from hf_metatts.data_collator import MetaTTSDataCollator, prepare_example

FPS = 16000 / 256


def timings(phones_and_ends):
    start, out = 0.0, []
    for phone, end in phones_and_ends:
        out.append({"phone": phone, "start": start, "end": end})
        start = end
    return out


def test_espeak_phones_map_exactly_onto_the_tokens():
    tokens = list("ɐ dˈɑːɡ.")
    phones = timings([("ɐ", 0.1), ("d", 0.2), ("ˈɑː", 0.4), ("ɡ", 0.5)])
    durations = token_durations(tokens, phones, num_frames=32, frames_per_second=FPS)
    assert len(durations) == len(tokens) and sum(durations) == 32
    by_token = dict(zip(range(len(tokens)), durations))
    # ɐ 0-0.1 s, d 0.1-0.2 s, ɑ carries the whole stressed long vowel, ɡ gets the rest up to the last frame
    assert [by_token[0], by_token[2], by_token[4], by_token[6]] == [6, 6, 13, 7]
    # the space, the stress mark, the length mark and the full stop carry no frames
    assert by_token[1] == by_token[3] == by_token[5] == by_token[7] == 0


def test_a_two_letter_phone_shares_its_frames():
    tokens = list("tʃiː")
    durations = token_durations(tokens, timings([("tʃ", 0.16), ("iː", 0.32)]), 20, FPS)
    assert durations == [5, 5, 10, 0]


def test_festival_phone_names_are_aligned_to_the_ipa_tokens():
    # festival (ARPAbet-like) phones for "a dog, I say." with pauses at the start and at the comma
    tokens = list("ɐ dˈɑːɡ, aɪ sˈeɪ.")
    phones = timings([("pau", 0.2), ("ax", 0.3), ("d", 0.4), ("aa", 0.6), ("g", 0.7), ("pau", 0.9),
                      ("ay", 1.1), ("s", 1.2), ("ey", 1.4), ("pau", 1.6)])
    durations = token_durations(tokens, phones, num_frames=100, frames_per_second=FPS, language="en-us")
    assert durations is not None and sum(durations) == 100
    spoken = {tokens[i] + str(i): d for i, d in enumerate(durations) if d}
    # the pause at the comma lands on the comma or the space after it, not on a letter
    assert durations[tokens.index(",")] + durations[tokens.index(",") + 1] == round(0.9 * FPS) - round(0.7 * FPS)
    # the diphthongs ay / ey are spread over their two letters
    assert durations[tokens.index("a")] > 0 and durations[tokens.index("a") + 1] > 0
    assert all(durations[i] == 0 for i, t in enumerate(tokens) if t in "ˈː"), spoken


def test_phones_of_another_sentence_are_refused():
    tokens = list("ɐ dˈɑːɡ.")
    phones = timings([("pau", 0.1), ("m", 0.2), ("n", 0.3), ("s", 0.4), ("t", 0.5), ("k", 0.6), ("pau", 0.7)])
    assert token_durations(tokens, phones, 40, FPS) is None


@pytest.mark.parametrize("bad", [[], timings([("a", 0.3), ("b", 0.2)]), timings([("a", float("nan"))])])
def test_bad_phone_timings_raise_a_clear_error(bad):
    with pytest.raises(PhoneTimingError, match="(?i)phone"):
        phone_frame_counts(bad, 20, FPS)


def test_tokens_group_into_letters_and_boundaries():
    groups = group_tokens(list("ˈaːb, c"))
    assert groups == [([0, 1, 2], True), ([3], True), ([4], False), ([5], False), ([6], True)]


def test_prepare_example_adds_durations_summing_to_the_frames():
    processor = tiny_processor()
    sampling_rate = processor.feature_extractor.sampling_rate
    audio = {"array": np.random.default_rng(0).normal(0, 0.1, sampling_rate).astype(np.float32),
             "sampling_rate": sampling_rate}
    row = {"text": "a dog", "phonemes": "ɐ dˈɑːɡ", "language": "en-us", "audio": audio,
           "phone_timings": timings([("ɐ", 0.2), ("d", 0.4), ("ˈɑː", 0.8), ("ɡ", 1.0)])}
    prepared = prepare_example(row, processor)
    assert len(prepared["durations"]) == len(prepared["input_ids"])
    assert sum(prepared["durations"]) == len(prepared["labels"])
    row_without = {**row, "phone_timings": []}
    assert prepare_example(row_without, processor)["durations"] == []


def test_collator_marks_rows_without_durations():
    rows = [{"input_ids": [5, 6, 7], "labels": np.zeros((9, 80)), "durations": [3, 3, 3]},
            {"input_ids": [5, 6], "labels": np.zeros((6, 80)), "durations": []}]
    batch = MetaTTSDataCollator()(rows)
    assert batch["durations"].tolist() == [[3, 3, 3], [-1, -1, 0]]
    assert "durations" not in MetaTTSDataCollator()([{**r, "durations": []} for r in rows])


def _batch(processor, frames=(30, 45)):
    encoded = processor.tokenizer(["Hi there.", "A longer one."], padding=True, return_tensors="pt")
    mask = torch.zeros(2, max(frames), dtype=torch.long)
    for row, count in enumerate(frames):
        mask[row, :count] = 1
    labels = torch.randn(2, max(frames), 80, generator=torch.Generator().manual_seed(0)) - 4.0
    lengths = encoded["attention_mask"].sum(1).tolist()
    durations = torch.zeros(2, encoded["input_ids"].shape[1], dtype=torch.long)
    durations[0, : lengths[0]] = frames[0] // lengths[0]
    durations[0, lengths[0] - 1] += frames[0] - int(durations[0].sum())
    return {**encoded, "labels": labels, "labels_attention_mask": mask}, durations


def test_rows_without_durations_use_the_aligner_and_the_others_teach_it():
    processor = tiny_processor()
    model = tiny_model().train()
    batch, durations = _batch(processor)
    mixed = durations.clone()
    mixed[1, : int(batch["attention_mask"][1].sum())] = -1
    output = model(**batch, durations=mixed)
    assert {"alignment", "bin", "alignment_given"} <= set(output.losses)
    assert torch.equal(output.durations[0], durations[0])  # given row kept as given
    second = int(batch["attention_mask"][1].sum())
    assert int(output.durations[1].sum()) == 45 and (output.durations[1][:second] > 0).all()
    output.loss.backward()
    assert model.aligner.key_proj[0].weight.grad.abs().sum() > 0
    # a wrong sum in a given row is still refused, whatever the other rows hold
    wrong = mixed.clone()
    wrong[0, 0] += 1
    with pytest.raises(ValueError, match="must sum to each clip's number of mel frames"):
        model(**batch, durations=wrong)


def test_training_on_given_durations_teaches_the_aligner_that_path():
    torch.manual_seed(0)
    processor = tiny_processor()
    model = tiny_model(aligner_temperature=0.05).train()
    batch, durations = _batch(processor, frames=(30, 30))
    lengths = batch["attention_mask"].sum(1).tolist()
    durations[1, : lengths[1]] = 30 // lengths[1]
    durations[1, lengths[1] - 1] += 30 - int(durations[1].sum())
    # each token sounds the same wherever it is: a fixed mel per phoneme id along the given path
    sounds = torch.randn(processor.tokenizer.vocab_size, 80, generator=torch.Generator().manual_seed(1)) - 4.0
    for row in range(2):
        frame_tokens = torch.repeat_interleave(batch["input_ids"][row, : lengths[row]], durations[row, : lengths[row]])
        batch["labels"][row, :30] = sounds[frame_tokens]
    optimiser = torch.optim.Adam(model.aligner.parameters(), lr=1e-2)
    first = None
    for _ in range(40):
        loss = model(**batch, durations=durations).losses["alignment_given"]
        first = first if first is not None else loss.item()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert loss.item() < 0.5 * first
    found = model.eval().compute_durations(**batch)
    agreement = (found == durations).float()[batch["attention_mask"].bool()].mean()
    assert agreement > 0.5
    # the trained aligner's path score tells the clip's own text from another text of the same length
    matched = model.transcript_scores(**batch)[1]
    wrong_ids = batch["input_ids"].clone()
    wrong_ids[0, : lengths[0]] = wrong_ids[0, : lengths[0]].flip(0)
    mismatched = model.transcript_scores(**{**batch, "input_ids": wrong_ids})[1]
    assert mismatched[0] > matched[0] + 0.5, (matched, mismatched)
