"""Languages the default corpus never trains on: Polish, Bulgarian and Irish sentences, and the
``unseen_languages`` preset that renders them with the voice variants of the default corpus's non-English test
speakers, all in ``test``."""

from __future__ import annotations

import pytest

from hf_metatts.data import get_preset
from hf_metatts.data.plan import make_plan
from hf_metatts.data.sentences import clean_sentences, fortune_files

NEW_LANGUAGES = ("pl", "bg", "ga")
requires_new_fortunes = pytest.mark.skipif(
    not all(fortune_files(language) for language in ("en", *NEW_LANGUAGES)),
    reason="Debian fortunes, fortunes-pl, -bg and -ga not installed (scripts/install_synthesizers.sh)",
)


def test_polish_sentences_keep_their_letters_and_split_before_a_capital_with_a_diacritic():
    text = "Zażółć gęślą jaźń przed świtem. Łódź płynie po rzece wolno. Śnieg pada cicho na pola."
    assert clean_sentences([text], "pl") == ["Zażółć gęślą jaźń przed świtem.", "Łódź płynie po rzece wolno.",
                                              "Śnieg pada cicho na pola."]
    assert clean_sentences(["Zażółć gęślą jaźń przed świtem."], "cs") == [], "ł and ą are not Czech letters"


def test_bulgarian_sentences_are_cyrillic_only():
    assert clean_sentences(["Бързата работа е срам за майстора."], "bg") == ["Бързата работа е срам за майстора."]
    assert clean_sentences(["Бързата работа е срам за майстора, ok."], "bg") == [], "a Latin word is refused"
    assert clean_sentences(["Ёжик в тумане идёт домой."], "bg") == [], "ё is Russian, not Bulgarian"
    assert clean_sentences(["Ёжик в тумане идёт домой."], "ru") == ["Ёжик в тумане идёт домой."]


def test_irish_sentences_keep_the_long_vowels():
    assert clean_sentences(["Is fearr rith maith ná droch sheasamh."], "ga") == [
        "Is fearr rith maith ná droch sheasamh."]


def test_the_preset_puts_every_voice_in_test_with_the_variants_of_the_default_non_english_test_speakers():
    preset = get_preset("unseen_languages")
    default = get_preset("default")
    assert preset.splits == ("test",) and preset.sentence_fractions == (0.0, 0.0, 1.0)
    assert set(preset.espeak_voices) == set(NEW_LANGUAGES)
    assert not set(preset.espeak_voices) & {language.split("-")[0] for language in default.espeak_voices}
    assert not preset.flite_voices and not preset.festival_voices and not preset.perturbations
    assert set(preset.heldout_voices) == {f"espeak:{language}+{variant}" for language in NEW_LANGUAGES
                                          for variant in preset.espeak_voices[language]}


@requires_new_fortunes
def test_the_plan_reads_only_test_sentences_of_three_new_languages_with_the_default_test_variants():
    plan = make_plan(get_preset("unseen_languages").replace(num_workers=0), sources=("espeak",))
    assert {job.split for job in plan.jobs} == {"test"}
    assert {job.voice.language for job in plan.jobs} == set(NEW_LANGUAGES)
    assert len({job.speaker_id for job in plan.jobs}) == 15
    assert all(len(job.sentences) == 20 for job in plan.jobs)

    default = make_plan(get_preset("default").replace(num_workers=0), sources=("espeak",))
    default_test_variants = {job.voice.voice.split("+")[1] for job in default.jobs
                             if job.split == "test" and not job.voice.language.startswith("en")}
    assert default_test_variants == set(get_preset("unseen_languages").espeak_voices["pl"])
    trained_languages = {job.voice.language.split("-")[0] for job in default.jobs if job.split == "train"}
    assert not trained_languages & set(NEW_LANGUAGES)


def test_the_screen_speaks_the_same_languages_with_other_variants():
    test, screen = get_preset("unseen_languages"), get_preset("unseen_languages_screen")
    assert set(screen.espeak_voices) == set(test.espeak_voices)
    for language in NEW_LANGUAGES:
        assert not set(screen.espeak_voices[language]) & set(test.espeak_voices[language])
    assert not set(screen.heldout_voices) & set(test.heldout_voices)
    assert len(screen.heldout_voices) == 9 and screen.splits == ("test",)
