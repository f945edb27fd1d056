"""Citations: every [n] left in a report names a real source; invented ones are removed and reported."""

from agent.citations import cited, verify


def test_valid_citations_are_kept_and_normalized():
    text, bad = verify("Heat pumps work [1, 2]. Costs vary [2-3]. See also [3][1].", {1, 2, 3})
    assert text == "Heat pumps work [1][2]. Costs vary [2][3]. See also [3][1]."
    assert bad == []


def test_invented_citations_are_removed():
    text, bad = verify("Claim one [1]. Claim two [7]. Mixed [2, 9].", {1, 2})
    assert "[7]" not in text and "[9]" not in text
    assert text == "Claim one [1]. Claim two. Mixed [2]."
    assert bad == [7, 9]


def test_non_citation_brackets_are_left_alone():
    text, bad = verify("An array a[i] and a link [see here](x) and [2024] stay.", {1})
    assert "[see here](x)" in text and "a[i]" in text
    assert bad == [2024] and "[2024]" not in text  # a bare number in brackets reads as a citation


def test_cited_collects_numbers():
    assert cited("x [1] y [2, 4] z [5-6]") == {1, 2, 4, 5, 6}


def test_agreement_section_compares_cited_sources():
    from agent.citations import agreement

    text = agreement([{"model": "a:x", "text": "One [1]. Two [2]."}, {"model": "b:y", "text": "One [1]. Three [3]."}])
    assert text.startswith("## Where the models agreed and disagreed")
    assert "All models drew on [1]." in text
    assert "Only a:x relied on [2]." in text and "Only b:y relied on [3]." in text
    assert "nothing to compare" in agreement([{"model": "a:x", "text": "[1]"}])
