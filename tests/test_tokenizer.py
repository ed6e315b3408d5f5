import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hf_metatts import InvalidTextError, MetaTTSTokenizer, UnsupportedLanguageError, phonemize
from hf_metatts.tokenization_metatts import DEFAULT_SYMBOLS, is_pronounceable


@pytest.fixture(scope="module")
def tokenizer():
    return MetaTTSTokenizer()


def test_phonemes_keep_stress_word_boundaries_and_punctuation():
    (phonemes,) = phonemize(["Hello, world!"])
    assert phonemes == "həlˈoʊ, wˈɜːld!"


def test_numbers_and_abbreviations_go_through_espeak_normalisation():
    (phonemes,) = phonemize(["Dr. Smith paid 42 dollars."])
    assert "dˈɑːktɚ" in phonemes  # "Dr." read as "doctor"
    assert "fˈɔːɹɾi" in phonemes and "tˈuː" in phonemes  # "42" read as "forty two"
    assert not any(ch.isdigit() for ch in phonemes)


def test_languages_share_one_table(tokenizer):
    english = tokenizer("Good morning.")["input_ids"]
    german = tokenizer("Guten Morgen.", language="de")["input_ids"]
    czech = tokenizer("Dobré ráno.", language="cs")["input_ids"]
    unk = tokenizer.convert_tokens_to_ids("<unk>")
    for ids in (english, german, czech):
        assert unk not in ids and max(ids) < tokenizer.vocab_size == len(DEFAULT_SYMBOLS)
    assert english != german


def test_mixed_scripts_are_read_not_dropped(tokenizer):
    phonemes = tokenizer.decode(tokenizer("Hello Привет")["input_ids"])
    assert phonemes.startswith("həlˈoʊ") and len(phonemes.split()) >= 2


def test_default_language_is_saved(tmp_path):
    tokenizer = MetaTTSTokenizer(language="fr-fr")
    tokenizer.save_pretrained(tmp_path)
    loaded = MetaTTSTokenizer.from_pretrained(tmp_path)
    assert loaded.language == "fr-fr"
    assert loaded.get_vocab() == tokenizer.get_vocab()
    assert loaded("Bonjour.")["input_ids"] == tokenizer("Bonjour.")["input_ids"]


def test_batch_padding_and_mask(tokenizer):
    batch = tokenizer(["Hi.", "A longer sentence here."], padding=True, return_tensors="pt")
    short_length = len(tokenizer("Hi.")["input_ids"])
    assert batch["attention_mask"][0].sum() == short_length
    assert (batch["input_ids"][0, short_length:] == tokenizer.pad_token_id).all()


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_text_raises(tokenizer, text):
    with pytest.raises(InvalidTextError, match="empty or whitespace-only"):
        tokenizer(text)


@pytest.mark.parametrize("text", ["!!!", "... ?", "—"])
def test_text_without_pronounceable_content_raises(tokenizer, text):
    with pytest.raises(InvalidTextError, match="no pronounceable content"):
        tokenizer(text)


def test_unknown_language_says_how_to_list_languages(tokenizer):
    with pytest.raises(UnsupportedLanguageError, match=r"'xx-zz'.*hf-metatts languages"):
        tokenizer("Hello", language="xx-zz")
    assert tokenizer.language == "en-us"


def test_symbols_outside_the_table_map_to_unk_with_a_warning(caplog):
    tokenizer = MetaTTSTokenizer()
    with caplog.at_level(logging.WARNING):
        ids = tokenizer("hɛloʊ\u4e00", is_phonemized=True)["input_ids"]
    assert ids[-1] == tokenizer.convert_tokens_to_ids("<unk>")
    assert "U+4E00" in caplog.text and "not in the phoneme table" in caplog.text


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(min_size=0, max_size=40))
def test_random_unicode_tokenizes_or_raises_the_documented_error(text):
    tokenizer = MetaTTSTokenizer()
    try:
        ids = tokenizer(text)["input_ids"]
    except InvalidTextError:
        return
    assert len(ids) > 0
    assert all(0 <= i < tokenizer.vocab_size for i in ids)
    assert is_pronounceable(tokenizer.decode(ids))
