"""The claim check's first pass: each cited sentence held against the text of the source it cites."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import subprocess_env

from agent import claimcheck
from agent.claimcheck import Claim, Verdict, check, check_all, split_claims

COLD = """# How heat pumps perform in cold climates

Air-source heat pumps move heat from outdoor air into a building instead of making heat by burning fuel.
Their efficiency is measured by the coefficient of performance (COP): the units of heat delivered per unit
of electricity used.

Modern cold-climate heat pumps use variable-speed inverter compressors and vapour injection. Field
measurements in northern homes show seasonal COPs between 2.5 and 3.5, and units that keep delivering
useful heat down to minus 25 °C. At -20°C a good cold-climate unit still reaches a COP near 1.8,
so it uses roughly half the electricity of resistance heating even on the coldest days.

A 2019 study by the Northeast Energy Efficiency Partnerships (NEEP) followed 1,200 homes in Vermont and Maine.
Older single-speed units did not keep up below minus 10 °C and relied on a backup heater.
"""

COSTS = """# What heat pumps cost to run

Published 3 March 2024.

Where electricity costs four or more times the price of gas per kilowatt-hour, a heat pump can cost more
to run than a gas boiler unless its seasonal COP is high. In the United Kingdom the average household
paid £1,050 a year for gas heating, against £890 with a heat pump.

A ducted installation costs between $4,000 and $8,000, according to the Department of Energy. Grants
covered 1.2 million installations in 2023, about 20 percent of them in rented homes.
"""

GRID = """# Grid and emissions

Heat pumps raise winter electricity demand. In Norway, where 60% of homes have one, the grid copes because
most power comes from hydro. A heat pump running on an average European grid emits about 40% less CO2 than
a gas boiler.
"""

SOURCES = {1: COLD, 2: COSTS, 3: GRID}

SYNTHESIS = """## Answer

Modern cold-climate heat pumps use variable-speed inverter compressors and vapour injection [1]. Field
measurements in northern homes show seasonal COPs between 2.5 and 4.5 [1]. In Norway, where 60% of homes
have one, the grid copes because most power comes from hydro [2]. Heat pumps were invented by Peter von
Rittinger in 1856 and first sold in Austria [3]. Even at minus 20 °C a good cold-climate model still
delivers a COP of about 1.8, using around half the electricity that resistance heaters need [1].

## Where the models agreed and disagreed

All models drew on [1], [2].
"""


def _verdicts() -> dict[str, Verdict]:
    start, end = claimcheck.answer_span(SYNTHESIS)
    verdicts = check_all(SYNTHESIS, SOURCES, start, end)
    return {v.claim.text.split()[0] + " " + v.claim.text.split()[1]: v for v in verdicts}


def _one(text: str, cited: list[int], sources: dict[int, str] = SOURCES) -> Verdict:
    return check(Claim(text=text, cited=cited, start=0, end=len(text)), sources)


# -- the five claims of a synthesis ------------------------------------------------------------------

def test_a_sentence_copied_from_its_source_is_quoted():
    v = _verdicts()["Modern cold-climate"]
    assert v.verdict == "quoted" and v.source == 1 and v.score == pytest.approx(1.0)
    assert "inverter compressors" in v.passage and v.missing == []


def test_a_sentence_with_one_figure_changed_names_the_figure():
    v = _verdicts()["Field measurements"]
    assert v.verdict == "figure not in source"
    assert v.missing == ["4.5"]  # 2.5 is in the passage: only the changed figure is named
    assert "3.5" in v.passage and v.source == 1


def test_a_sentence_citing_the_wrong_source_names_the_right_one():
    v = _verdicts()["In Norway,"]
    assert v.claim.cited == [2]
    assert v.verdict == "found elsewhere" and v.source == 3
    assert "hydro" in v.passage


def test_an_invented_sentence_is_not_found():
    v = _verdicts()["Heat pumps"]
    assert v.verdict == "not found" and v.failed
    assert v.score < claimcheck.PARAPHRASE


def test_a_fair_paraphrase_is_never_failed():
    v = _verdicts()["Even at"]
    assert v.verdict in ("unchecked", "quoted") and not v.failed
    assert v.source == 1 and "1.8" in v.passage


def test_only_the_answer_section_is_checked_when_its_span_is_given():
    start, end = claimcheck.answer_span(SYNTHESIS)
    assert SYNTHESIS[start:end].strip().startswith("Modern") and "agreed" not in SYNTHESIS[start:end]
    assert len(check_all(SYNTHESIS, SOURCES, start, end)) == 5
    assert len(check_all(SYNTHESIS, SOURCES)) == 6  # the agreement line carries citations too
    assert claimcheck.answer_span("no heading here [1].") == (0, 0)


# -- splitting a text into claims --------------------------------------------------------------------

def test_claims_are_the_cited_sentences_with_offsets_into_the_text():
    text = ("# Heading [1]\n\nHeat pumps work in the cold [1]. This sentence cites nothing. Costs vary a lot, "
            "e.g. with tariffs [2][3].\n\n- A bullet with a claim [2].\n- A bullet without one\n"
            "* Another, cited after its stop. [3]\n\nAm 24. März 2004 stieg der Preis [1].")
    claims = split_claims(text)
    assert [c.text for c in claims] == [
        "Heat pumps work in the cold.", "Costs vary a lot, e.g. with tariffs.", "A bullet with a claim.",
        "Another, cited after its stop.", "Am 24. März 2004 stieg der Preis."]
    assert [c.cited for c in claims] == [[1], [2, 3], [2], [3], [1]]
    for claim in claims:
        sentence = text[claim.start:claim.end]
        assert sentence.endswith(("].", "]")) and not sentence.startswith(("-", "*", " "))
    assert text[claims[3].start:claims[3].end] == "Another, cited after its stop. [3]"
    assert text[claims[0].start:claims[0].end] == "Heat pumps work in the cold [1]."


def test_citation_ranges_and_lists_are_read_like_the_report_reads_them():
    (claim,) = split_claims("Grants covered many homes [1-3] [5, 6].")
    assert claim.cited == [1, 2, 3, 5, 6] and claim.text == "Grants covered many homes."


# -- figures -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "At -20 °C a good cold-climate unit still reaches a COP near 1.8.",  # "-20°C" in the source
    "The NEEP study followed 1200 homes in Vermont and Maine.",  # "1,200" in the source
    "Grants covered 1,200,000 installations in 2023.",  # "1.2 million"
    "Grants covered 1.2m installations in 2023, about a fifth of them (20%) in rented homes.",
])
def test_numbers_spelt_another_way_are_the_same_number(text):
    v = _one(text, [1, 2])
    assert v.missing == [] and not v.failed, v


@pytest.mark.parametrize("text, wrong", [
    ("The NEEP study followed 1,300 homes in Vermont and Maine.", "1,300"),
    ("At -30°C a good cold-climate unit still reaches a COP near 1.8.", "-30°C"),
    ("Grants covered 1.4 million installations in 2023.", "1.4 million"),
])
def test_a_number_that_differs_is_named(text, wrong):
    v = _one(text, [1, 2])
    assert v.verdict == "figure not in source" and v.missing == [wrong.lstrip("-")], v


def test_units_must_agree_where_both_sides_give_one():
    assert _one("About 20 percent of the grants went to rented homes.", [2]).missing == []
    assert _one("About 20% of the grants went to rented homes.", [2]).missing == []
    v = _one("About $20 of the grants went to rented homes.", [2])
    assert v.missing == ["$20"]
    # A claim that gives no unit matches the number whatever its unit in the source.
    assert _one("In the United Kingdom a household paid 890 a year with a heat pump.", [2]).missing == []


def test_german_and_english_decimal_commas_are_both_read():
    source = {1: "Der Sitz wiegt 1,5 Kilo und kostet 1.200 Euro."}
    assert _one("Der Sitz wiegt 1.5 Kilo und kostet 1200 Euro.", [1], source).verdict == "quoted"
    assert _one("Der Sitz wiegt 2,5 Kilo und kostet 1.200 Euro.", [1], source).missing == ["2,5"]


def test_hedged_numbers_match_nearby_values_and_plain_ones_do_not():
    source = {1: "The scheme paid for 990 heat pumps in the first year of the programme."}
    assert _one("The scheme paid for about 1,000 heat pumps in the first year.", [1], source).missing == []
    assert _one("The scheme paid for more than 900 heat pumps in the first year.", [1], source).missing == []
    assert _one("The scheme paid for 1,000 heat pumps in the first year.", [1], source).missing == ["1,000"]
    assert _one("The scheme paid for about 1,500 heat pumps in the first year.", [1], source).missing == ["1,500"]


def test_a_hedged_year_is_a_year_rounded_not_a_tenth_of_it():
    source = {1: "He returned home to England in 1868 to write the rulebook at Hurlingham Park in London."}
    assert _one("He returned to England in about 1870 to write the rulebook at Hurlingham Park.", [1], source).missing == []
    assert _one("He returned to England in about 1875 to write the rulebook at Hurlingham Park.", [1], source).missing == ["1875"]


@pytest.mark.parametrize("date", ["3 March 2024", "2024-03-03", "March 3, 2024", "3.3.2024", "March 2024"])
def test_dates_in_any_spelling_are_the_same_date(date):
    v = _one(f"The figures on running costs were published on {date}.", [2],
             {2: "The figures on running costs were published on 3 March 2024."})
    assert v.verdict == "quoted", v


def test_a_date_that_differs_or_says_more_than_the_source_is_named():
    source = {2: "The figures on running costs were published in March 2024."}
    assert _one("The figures on running costs were published on 4 March 2024.", [2], source).missing == ["4 March 2024"]
    assert _one("The figures on running costs were published in May 2024.", [2], source).missing == ["May 2024"]


def test_a_year_from_the_page_header_is_the_source_s_but_not_one_its_passage_contradicts():
    # "Published 3 March 2024": the passage about household bills states no year of its own.
    assert not _one("In 2024 the average UK household paid £1,050 a year for gas heating.", [2]).failed
    v = _one("Grants covered 1.2 million installations in 2022.", [2])  # the passage says 2023
    assert v.verdict == "figure not in source" and v.missing == ["2022"]


def test_a_date_from_the_page_header_is_the_source_s_when_the_passage_gives_none():
    assert not _one("As of 3 March 2024, a ducted installation costs between $4,000 and $8,000.", [2]).failed
    assert _one("As of 5 March 2024, a ducted installation costs between $4,000 and $8,000.", [2]).failed


def test_a_passage_may_join_list_items_that_differ_only_by_their_figures():
    source = {1: "Die Preise im Überblick:\n\n- Sandisk Ultra mit 16 Gigabyte für 6 Euro\n"
                 "- Sandisk Ultra mit 32 Gigabyte für 9 Euro\n- Sandisk Ultra mit 64 Gigabyte für 16 Euro\n"}
    v = _one("Sandisk Ultra mit 16 Gigabyte für 6 Euro, mit 32 Gigabyte für 9 Euro und mit 64 Gigabyte für 16 Euro.",
             [1], source)
    assert v.verdict == "quoted" and v.missing == []


def test_a_sentence_that_shares_no_words_with_the_claim_never_lends_it_a_figure():
    source = {1: "Blue Tomato startet mit dem Captain's Quest 2017 die dritte Runde des Contests. "
                 "Die Premiere 2015 fand am Ramsauer See statt."}
    v = _one("Blue Tomato startet mit dem Captain's Quest 2015 die dritte Runde des Contests.", [1], source)
    assert v.verdict == "figure not in source" and v.missing == ["2015"]


# -- names -------------------------------------------------------------------------------------------

def test_a_changed_name_is_named():
    v = _one("A 2019 study by the Northeast Energy Efficiency Partnerships followed 1,200 homes in Vermont and Ohio.", [1])
    assert v.verdict == "figure not in source" and v.missing == ["Ohio"]


def test_acronyms_match_the_words_they_stand_for():
    assert _one("In the UK the average household paid £1,050 a year for gas heating.", [2]).missing == []
    assert _one("The DOE puts a ducted installation at $4,000 to $8,000.", [2]).missing == []
    assert _one("The EIA puts a ducted installation at $4,000 to $8,000.", [2]).missing == ["EIA"]
    # An acronym is looked for as a word: "ST" is not in "costs".
    assert _one("The ST puts a ducted installation at $4,000 to $8,000.", [2]).missing == ["ST"]


def test_a_name_the_source_gives_elsewhere_is_the_source_s():
    # The passage on field measurements does not repeat NEEP, but the page names it.
    v = _one("Field measurements by NEEP in northern homes show seasonal COPs between 2.5 and 3.5.", [1])
    assert v.missing == [] and not v.failed


def test_german_common_nouns_after_an_article_are_not_names():
    source = {1: "Im aktuellen Test wurden 18 Kindersitze geprüft. Britax Römer schneidet gut ab."}
    # Too short to be taken for German, yet "dem Bericht" is a noun after an article, not a name.
    assert _one("Laut dem Bericht wurden 18 Kindersitze geprüft.", [1], source).missing == []
    assert _one("Im aktuellen Test schneidet Britax Cybex gut ab.", [1], source).missing == ["Cybex"]


# -- what is not a quote -----------------------------------------------------------------------------

def test_a_claim_that_says_no_where_its_source_says_yes_is_no_quote():
    v = _one("Modern cold-climate heat pumps do not use variable-speed inverter compressors and vapour injection.", [1])
    assert v.verdict == "unchecked"
    v = _one("Older single-speed units kept up below minus 10 °C and relied on a backup heater.", [1])
    assert v.verdict == "unchecked"


def test_a_no_in_another_clause_of_the_passage_does_not_stop_a_quote():
    source = {1: "Heat pumps cut running costs in well-insulated homes, although installers say that in draughty old "
                 "farmhouses they do not."}
    assert _one("Heat pumps cut running costs in well-insulated homes.", [1], source).verdict == "quoted"


def test_a_claim_resting_on_two_sources_is_held_against_both():
    v = _one("Heat pumps reach a seasonal COP between 2.5 and 3.5, and a UK household paid £890 a year with one.", [1, 2])
    assert not v.failed and v.missing == []
    assert set(v.passages) == {1, 2} and "£890" in v.passages[2]
    v = _one("Heat pumps reach a seasonal COP between 2.5 and 3.5, and a UK household paid £790 a year with one.", [1, 2])
    assert v.verdict == "figure not in source" and v.missing == ["£790"]


def test_a_claim_in_another_language_than_its_source_is_left_unchecked_not_failed():
    source = {1: "Der Verein wurde im Wohnzimmer der Eheleute gegründet, einige Gleichgesinnte standen hinter ihnen."}
    v = _one("The club was founded in the couple's living room with the help of a few like-minded people.", [1], source)
    assert v.verdict == "unchecked"


def test_a_claim_whose_cited_source_has_no_text_here_is_unchecked():
    v = _one("Heat pumps work in the cold.", [7])
    assert v.verdict == "unchecked" and v.source is None


def test_the_first_pass_is_deterministic():
    first = [v.to_json() for v in check_all(SYNTHESIS, SOURCES)]
    claimcheck._TERM_OF.clear()  # nothing remembered from the first check decides the second
    claimcheck._corpus_of.cache_clear()
    assert [v.to_json() for v in check_all(SYNTHESIS, dict(reversed(list(SOURCES.items()))))] == first


def test_verdicts_are_the_same_in_every_process():
    # Sets of words iterate in another order under another hash seed: sums over them must not move.
    script = ("import json; from agent import claimcheck; from tests.test_claimcheck import SOURCES, SYNTHESIS; "
              "print(json.dumps([(v.verdict, v.source, v.missing, repr(v.score)) "
              "for v in claimcheck.check_all(SYNTHESIS, SOURCES)]))")
    root = Path(__file__).resolve().parent.parent
    outs = [subprocess.run([sys.executable, "-c", script], cwd=root, env=subprocess_env(PYTHONHASHSEED=seed),
                           capture_output=True, text=True, timeout=60, check=True).stdout for seed in ("1", "2", "3")]
    assert outs[0] == outs[1] == outs[2] and json.loads(outs[0])


# -- what a reader sees ------------------------------------------------------------------------------

def test_summary_counts_every_verdict():
    counts = claimcheck.summary(_verdicts().values())
    assert counts == {"claims": 5, "quoted": 1, "figure not in source": 1, "found elsewhere": 1, "not found": 1,
                      "unchecked": 1}


def test_verdicts_round_trip_through_json():
    for v in _verdicts().values():
        data = json.loads(json.dumps(v.to_json()))
        assert {"text", "cited", "start", "end", "verdict", "source", "passage", "missing", "score"} <= set(data)
        assert Verdict.from_json(data) == Verdict(v.claim, v.verdict, v.source, v.passage, v.missing,
                                                  round(v.score, 3), v.passages)


def test_failed_sentences_are_marked_where_they_stand_and_listed():
    start, end = claimcheck.answer_span(SYNTHESIS)
    verdicts = check_all(SYNTHESIS, SOURCES, start, end)
    marked = claimcheck.mark(SYNTHESIS, verdicts)
    assert "4.5 [1]. ⚠ *“4.5” is not in [1]*" in marked
    assert "hydro [2]. ⚠ *[2] does not say this; [3] does*" in marked
    assert "Austria [3]. ⚠ *no source of this run says this*" in marked
    assert marked.count("⚠") == 3  # the quote and the paraphrase are left as they are
    section = claimcheck.section(verdicts)
    assert section.startswith("## Claims checked\n\n5 cited sentences held against the sources they cite: "
                              "1 quoted, 1 figure not in source, 1 found elsewhere, 1 not found, 1 unchecked.")
    assert "seasonal COPs between 2.5 and 3.5" in section  # the passage that was found
    assert section.count("\n- ") == 3


# -- the second pass ---------------------------------------------------------------------------------

def test_the_second_pass_prompt_asks_for_a_verdict_and_a_quote_by_schema():
    v = _verdicts()["Even at"]
    system, user, schema = claimcheck.second_pass_prompt(v.claim, v.passages)
    assert schema["properties"]["verdict"]["enum"] == ["supported", "partly", "not supported", "contradicted"]
    assert schema["required"] == ["verdict", "quote"] and schema["additionalProperties"] is False
    assert v.claim.text in user and "Source 1:" in user and "1.8" in user
    assert "[1]" not in user  # a passage's bracketed numbers never read as citations
    assert claimcheck.second_pass_prompt(v.claim, v.passages) == (system, user, schema)


def test_the_second_pass_answer_is_read_and_its_quote_verified():
    passages = {1: "At -20°C a good cold-climate unit still reaches a COP near 1.8."}
    read = claimcheck.parse_second_pass('{"verdict": "supported", "quote": "reaches a COP  near 1.8"}', passages)
    assert read == {"verdict": "supported", "quote": "reaches a COP  near 1.8", "quote_found": True, "notes": []}
    read = claimcheck.parse_second_pass('Sure: {"verdict": "true", "quote": "a COP of 3"}', passages)
    assert read["verdict"] is None and read["quote_found"] is False and len(read["notes"]) == 2
    assert claimcheck.parse_second_pass("no JSON at all")["notes"] == ["the answer was not the JSON asked for"]
