"""The content term of the inner loop: the aligner reads frames as their own tokens, bad inputs are refused, gradients
reach the predicted mels only, and the term changes adaptation in the direction it should."""

import pytest
import torch
from tiny_models import tiny_model

import hf_metatts
from hf_metatts.meta import adapt_parameters
from hf_metatts.meta.content import content_term, frame_token_nll


@pytest.fixture(scope="module")
def bundled():
    return hf_metatts.MetaTTSForTextToSpeech.from_pretrained(hf_metatts.DEFAULT_CHECKPOINT).eval()


def _spoken(model, text="The birch canoe slid on the smooth planks."):
    """Ids ``(1, N)``, the model's own log-mels ``(1, T, M)`` and durations ``(1, N)`` of ``text``."""
    tokenizer = hf_metatts.MetaTTSTokenizer.from_pretrained(hf_metatts.DEFAULT_CHECKPOINT)
    ids = torch.tensor([tokenizer(text)["input_ids"]])
    text_mask = torch.ones_like(ids, dtype=torch.bool)
    speaker = model.voice(1)
    mels, counts, durations = model._acoustic_inference(ids, text_mask, speaker, 1.0, 0.0)
    return ids, text_mask, mels[:, : int(counts[0])], durations


def test_the_trained_aligner_reads_frames_as_their_own_tokens(bundled):
    ids, text_mask, mels, durations = _spoken(bundled)
    mask = torch.ones(mels.shape[:2], dtype=torch.bool)
    with torch.no_grad():
        own = frame_token_nll(bundled, mels, ids, text_mask, durations, mask).item()
        shifted = frame_token_nll(bundled, mels, ids, text_mask, torch.roll(durations, 3, dims=1), mask).item()
        # silence read as speech: every frame is as far from its token as from the others
        flat = frame_token_nll(bundled, torch.full_like(mels, -4.0), ids, text_mask, durations, mask).item()
    assert 0 <= own < 4.0 and own < shifted / 3 and own < flat


def test_padding_frames_and_tokens_do_not_count(bundled):
    """Padding as the collator writes it (silent frames, pad tokens) is masked out; only the aligner's convolutions
    see it at the clip's edge."""
    from hf_metatts.feature_extraction_metatts import SILENCE_LOG_MEL

    ids, text_mask, mels, durations = _spoken(bundled)
    mask = torch.ones(mels.shape[:2], dtype=torch.bool)
    padded_mels = torch.cat([mels, torch.full((1, 7, mels.shape[-1]), SILENCE_LOG_MEL)], dim=1)
    padded_mask = torch.cat([mask, torch.zeros(1, 7, dtype=torch.bool)], dim=1)
    padded_ids = torch.cat([ids, torch.full((1, 2), bundled.config.pad_token_id, dtype=ids.dtype)], dim=1)
    padded_text = torch.cat([text_mask, torch.zeros(1, 2, dtype=torch.bool)], dim=1)
    padded_durations = torch.cat([durations, torch.zeros(1, 2, dtype=durations.dtype)], dim=1)
    with torch.no_grad():
        plain = frame_token_nll(bundled, mels, ids, text_mask, durations, mask)
        padded = frame_token_nll(bundled, padded_mels, padded_ids, padded_text, padded_durations, padded_mask)
    assert padded.item() == pytest.approx(plain.item(), rel=0.01)


def test_gradients_reach_the_mels(bundled):
    ids, text_mask, mels, durations = _spoken(bundled)
    mels = mels.clone().requires_grad_(True)
    loss = frame_token_nll(bundled, mels, ids, text_mask, durations, torch.ones(mels.shape[:2], dtype=torch.bool))
    (grad,) = torch.autograd.grad(loss, [mels])
    assert grad.abs().sum() > 0


@pytest.mark.parametrize("shape_mels, shape_mask, shape_ids, shape_durations", [
    ((8, 80), (1, 8), (1, 4), (1, 4)),
    ((1, 8, 80), (1, 9), (1, 4), (1, 4)),
    ((1, 8, 80), (1, 8), (1, 4), (1, 5)),
])
def test_bad_shapes_are_refused(shape_mels, shape_mask, shape_ids, shape_durations):
    model = tiny_model().eval()
    with pytest.raises(ValueError, match="disagree"):
        frame_token_nll(model, torch.zeros(shape_mels), torch.ones(shape_ids, dtype=torch.long),
                        torch.ones(shape_ids, dtype=torch.bool), torch.full(shape_durations, 2),
                        torch.ones(shape_mask, dtype=torch.bool))


def test_no_valid_frame_and_bad_weights_are_refused():
    model = tiny_model().eval()
    with pytest.raises(ValueError, match="no valid frame"):
        frame_token_nll(model, torch.zeros(1, 8, model.config.num_mel_bins), torch.ones(1, 4, dtype=torch.long),
                        torch.ones(1, 4, dtype=torch.bool), torch.full((1, 4), 2), torch.zeros(1, 8, dtype=torch.bool))
    for weight in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="finite number >= 0"):
            content_term(model, weight)


def test_the_term_changes_adaptation_and_keeps_the_support_more_readable(bundled):
    ids, text_mask, mels, durations = _spoken(bundled)
    generator = torch.Generator().manual_seed(0)
    # a target the voice can only reach by blurring: the frames averaged over time, plus noise
    target = mels.mean(dim=1, keepdim=True).expand_as(mels) + 0.3 * torch.randn(mels.shape, generator=generator)
    support = {"input_ids": ids, "attention_mask": text_mask.long(), "labels": target,
               "labels_attention_mask": torch.ones(mels.shape[:2], dtype=torch.long), "durations": durations}
    before = {n: p.detach().clone() for n, p in bundled.named_parameters()}
    plain = adapt_parameters(bundled, support, method="finetune", steps=5, lr=0.02)
    with_term = adapt_parameters(bundled, support, method="finetune", steps=5, lr=0.02,
                                 loss_term=content_term(bundled, 1.0))
    assert any(not torch.equal(plain[n], with_term[n]) for n in plain)
    assert all(torch.equal(p, before[n]) for n, p in bundled.named_parameters())  # the model itself is untouched

    def readability(params):
        with torch.no_grad():
            out = torch.func.functional_call(bundled, params, args=(), kwargs=dict(support), strict=False)
        return frame_token_nll(bundled, out.spectrogram, ids, text_mask, out.durations,
                               support["labels_attention_mask"].bool()).item()

    assert readability(with_term) < readability(plain)
