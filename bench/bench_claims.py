"""How well the claim check's first pass tells true claims from false ones, on real pages.

    python bench/bench_claims.py [--corpus DIR] [--per-page N] [--group N] [--failures] [--sweep]
                                 [--thresholds QUOTED,MATCHED,PARAPHRASE]

Reads the 65 real saved pages of ``shared/corpus/web-real`` (beside the checkout) the way the product
does (:func:`agent.sources.convert.convert` of the HTML, then :func:`agent.citations.neutralize`), puts
them in runs of ``--group`` sources, and builds claims from the pages themselves, ``--per-page``
sentences of each (prose, 6-45 words, holding a number, date or name):

- **true** claims, cited to their page: the sentence as it stands (``verbatim``); reworded
  (``reworded``: a framing phrase, synonyms, a parenthesis dropped, clauses swapped); with its figures
  spelt another way (``reformatted``: ``1.200`` as ``1200``, ``20 %`` as ``20%``, ``23.10.2018`` as
  ``2018-10-23``, ``149 Euro`` as ``€149``); the clause that holds its figure (``clause``); joined with
  the next sentence (``merged``); reworded with a third of its other words replaced by words the page
  does not have (``loose``);
- **false** claims: each verbatim and reworded claim with one figure changed where it stands (``number``:
  its first significant digit; ``year``: by two; ``date``: its day or month; ``name``: another name of
  its kind, an acronym for an acronym, that the page does not contain); the sentence cited to another
  page of its run (``wrong source``); a sentence of a page outside the run, in the cited page's language,
  cited to it (``invented``).

Every claim goes through :func:`agent.claimcheck.check` with all the texts of its run. A true claim is
right when it is ``quoted`` or ``unchecked`` (``figure not in source``, ``not found`` and ``found
elsewhere`` are wrong); a changed figure is caught when its claim fails (and *named* when the verdict is
``figure not in source`` with that figure missing); a wrong source is right as ``found elsewhere`` naming
the page, an invented sentence as ``not found``. Targets: no true claim failed, at least 90% of changed
figures caught. ``--sweep`` varies each threshold in turn; ``--thresholds`` tries other values.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus" / "web-real"
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from agent import citations, claimcheck, extractive  # noqa: E402
from agent.errors import SourceError  # noqa: E402
from agent.sources.convert import convert  # noqa: E402


@dataclass
class Case:
    page: str
    group: int
    cited: int
    text: str
    true: bool
    variant: str  # verbatim/reworded/clause/merged, or the kind of figure changed
    changed: str = ""  # the figure as it now stands in a false claim


# -- pages -------------------------------------------------------------------------------------------

def load_texts(corpus: Path) -> list[tuple[str, str]]:
    """(file, text) of every page the converter reads, as the product would see it."""
    items = json.loads((corpus / "expectations.json").read_text(encoding="utf-8"))
    out = []
    for item in items:
        try:
            page = convert((corpus / item["file"]).read_bytes(), "text/html", item["original_url"])
        except SourceError:
            continue
        text = citations.neutralize(page.text)
        if text.strip():
            out.append((item["file"], text))
    return out


# -- rewording ---------------------------------------------------------------------------------------

_SYNONYMS = {
    "en": {"show": "indicate", "shows": "indicates", "big": "large", "large": "big", "use": "employ",
           "uses": "employs", "help": "assist", "helps": "assists", "buy": "purchase", "start": "begin",
           "started": "began", "important": "significant", "often": "frequently", "get": "obtain",
           "need": "require", "needs": "requires", "very": "highly", "fast": "quick", "quickly": "rapidly",
           "people": "individuals", "also": "additionally", "make": "create", "makes": "creates",
           "about": "roughly", "but": "yet", "because": "since", "new": "recent", "said": "stated",
           "says": "states", "good": "strong", "best": "finest", "small": "little", "like": "such as"},
    "de": {"sehr": "besonders", "zeigt": "belegt", "groß": "umfangreich", "große": "umfangreiche",
           "gibt": "existiert", "auch": "zudem", "aber": "jedoch", "wichtig": "bedeutsam", "neue": "aktuelle",
           "neuen": "aktuellen", "immer": "stets", "oft": "häufig", "schnell": "rasch", "kann": "vermag",
           "viele": "zahlreiche", "vielen": "zahlreichen", "jetzt": "nun", "dann": "danach", "gut": "stark",
           "heute": "derzeit", "bereits": "schon", "etwa": "ungefähr", "dabei": "hierbei", "sagt": "erklärt"},
    "fr": {"très": "fort", "aussi": "également", "mais": "toutefois", "grand": "important", "nouveau": "récent",
           "souvent": "fréquemment", "beaucoup": "énormément", "faire": "réaliser", "depuis": "dès"},
}
_FRAMES = {"en": "According to the page, ", "de": "Laut dem Bericht: ", "fr": "Selon la page, "}


def language(text: str) -> str:
    words = re.findall(r"\w+", text.lower())
    scores = {"de": sum(w in {"der", "die", "und", "ist", "nicht", "mit", "das", "auf", "für"} for w in words),
              "fr": sum(w in {"le", "la", "les", "et", "est", "des", "une", "pour", "dans"} for w in words),
              "en": sum(w in {"the", "and", "is", "of", "to", "in", "that", "for", "with"} for w in words)}
    return max(scores, key=scores.get)


def reword(sentence: str, rng: random.Random) -> str:
    """A close rewording, as a model writes one: a framing phrase, synonyms, no parenthesis, clauses swapped."""
    lang = language(sentence)
    text = re.sub(r"\s*\([^()]{0,80}\)", "", sentence)
    text = re.sub(r"\s+[–—]\s+[^–—]{0,80}\s+[–—]\s+", " ", text)
    synonyms = _SYNONYMS[lang]
    text = re.sub(r"\b\w+\b", lambda m: synonyms.get(m.group(0), m.group(0)), text)
    body = text.rstrip(".!?")
    parts = body.split(", ")
    if len(parts) == 2 and all(len(p.split()) >= 4 for p in parts) and rng.random() < 0.5 and lang == "en":
        body = f"{parts[1][0].upper()}{parts[1][1:]}, {parts[0][0].lower()}{parts[0][1:]}"
    if lang == "de":
        return _FRAMES[lang] + body + "."  # German nouns keep their capital
    return _FRAMES[lang] + body[0].lower() + body[1:] + "." if not body[:2].isupper() else _FRAMES[lang] + body + "."


def figure_clause(sentence: str) -> str | None:
    """The comma-clause of ``sentence`` that holds a figure, when the sentence has more than one."""
    parts = [p for p in re.split(r",\s+|;\s+", sentence.rstrip(".!?")) if len(p.split()) >= 6]
    for part in parts:
        if claimcheck.figures(part) and part != sentence.rstrip(".!?"):
            return part.strip() + "."
    return None


_MONTH_NUMBERS = {"januar": 1, "februar": 2, "märz": 3, "april": 4, "mai": 5, "juni": 6, "juli": 7, "august": 8,
                  "september": 9, "oktober": 10, "november": 11, "dezember": 12, "january": 1, "february": 2,
                  "march": 3, "may": 5, "june": 6, "july": 7, "october": 10, "december": 12}
_REFORMATS = [  # (pattern, replacement): the same figure spelt another way
    (re.compile(r"(\d{1,2})\.(\d{1,2})\.((?:19|20)\d\d)\b"), lambda m: f"{m[3]}-{int(m[2]):02d}-{int(m[1]):02d}"),
    (re.compile(r"\b(\d{1,2})\.\s+(" + "|".join(_MONTH_NUMBERS) + r")\s+((?:19|20)\d\d)\b", re.I),
     lambda m: f"{m[1]}.{_MONTH_NUMBERS[m[2].lower()]}.{m[3]}"),
    (re.compile(r"(?<![\d.,])(\d{1,3})((?:\.\d{3})+)(?![\d,])"), lambda m: m[1] + m[2].replace(".", "")),
    (re.compile(r"(?<![\d.,])(\d{1,3})((?:,\d{3})+)(?![\d.])"), lambda m: m[1] + m[2].replace(",", "")),
    (re.compile(r"(?<![\d.,])([1-9]\d{4,})(?![\d.,])"), lambda m: f"{int(m[1]):,}"),
    (re.compile(r"(\d)\s+(%|°C|°)"), lambda m: m[1] + m[2]),
    (re.compile(r"(\d)(%|°C)"), lambda m: m[1] + " " + m[2]),
    (re.compile(r"(\d+(?:,\d+)?)\s*(?:Euro|€)"), lambda m: "€" + m[1]),
    (re.compile(r"\b(\d+) Prozent\b"), lambda m: m[1] + " %"),
]


def reformat(sentence: str) -> str | None:
    """The sentence with its figures spelt another way (``1.200`` as ``1200``, ``20 %`` as ``20%``,
    ``23.10.2018`` as ``2018-10-23``, ``149 Euro`` as ``€149``), or None when none of them applies."""
    out = sentence
    for pattern, repl in _REFORMATS:
        out = pattern.sub(repl, out)
    return out if out != sentence else None


_LOOSE = ("überdies", "sozusagen", "gewissermaßen", "insgesamt", "namentlich", "seinerzeit", "ohnehin")


def loosen(sentence: str, rng: random.Random) -> str:
    """A loose paraphrase: reworded, then every third of its other content words replaced by a word the page
    does not have (figures and names kept), so that it shares far fewer words with its source."""
    words = reword(sentence, rng).split()
    keep = {f.text for f in claimcheck.figures(sentence)}
    count = 0
    for i, word in enumerate(words):
        plain = word.strip(".,;:!?»«\"'()*")
        if not plain.isalpha() or plain[0].isupper() or plain.lower() in claimcheck.STOPWORDS or plain in keep:
            continue
        count += 1
        if count % 3 == 0:
            words[i] = word.replace(plain, rng.choice(_LOOSE))
    return " ".join(words)


# -- changing a figure -------------------------------------------------------------------------------

_OTHER_ACRONYMS = ["CDU", "BMW", "NASA", "OECD", "IBM", "SAP", "UNESCO", "FIFA", "ESA", "WHO", "DHL", "ZDF"]
_OTHER_NAMES = ["Hamburg", "Siemens", "Oxford", "Lyon", "Microsoft", "Zürich", "Meyer", "Toyota", "Brüssel",
                "Nokia", "Dubois", "Chicago", "Bosch", "Lufthansa", "Wagner", "Renault", "Kopenhagen", "Adidas"]
_MONTH_SWAP = {"January": "July", "March": "September", "May": "November", "June": "December", "July": "January",
               "Januar": "Juli", "März": "September", "Mai": "November", "Juni": "Dezember", "Juli": "Januar",
               "Oktober": "April", "Dezember": "Juni", "September": "März", "April": "Oktober", "August": "Februar",
               "November": "Mai", "Februar": "August", "October": "April", "December": "June", "February": "August",
               "April": "October"}


def _bump_digit(written: str) -> str:
    """``written`` with its first significant digit raised by one (9 becomes 1 and a 0 is not led)."""
    for i, ch in enumerate(written):
        if ch.isdigit() and ch != "0":
            return written[:i] + str(int(ch) % 9 + 1) + written[i + 1:]
    return written


def change(claim: str, page_text: str, rng: random.Random) -> list[tuple[str, str, str]]:
    """The claim with one figure changed where it stands, once per kind of figure it has (its first number,
    year and date, one of its names at random): (kind, new claim, the new figure)."""
    out: dict[str, tuple[str, str, str]] = {}
    figs = claimcheck.figures(claim)
    names = [f for f in figs if f.kind == "name" and len(f.text) >= 3]
    if names:
        keep = rng.choice(names)
        figs = [f for f in figs if f.kind != "name" or f is keep]
    for fig in figs:
        if claim[fig.at:fig.at + len(fig.text)] != fig.text:
            continue
        if fig.kind == "number":
            year = re.fullmatch(r"(1[89]|20)\d\d", fig.text)
            new = str(int(fig.text) + rng.choice((-2, 2))) if year else _bump_digit(fig.text)
            kind = "year" if year else "number"
        elif fig.kind == "date":
            month = next((m for m in _MONTH_SWAP if re.search(rf"\b{m}\b", fig.text)), None)
            day = re.match(r"\d{1,2}", fig.text) or re.search(r"\b(\d{1,2})(?=,?\s+\d{4})", fig.text)
            if day:
                value = int(day.group(0))
                new = fig.text[:day.start()] + str(value + 3 if value <= 25 else value - 3) + fig.text[day.end():]
            elif month:
                new = re.sub(rf"\b{month}\b", _MONTH_SWAP[month], fig.text)
            else:
                continue
            kind = "date"
        else:  # a name, replaced by one of its kind (an acronym by an acronym) that the page does not hold
            others = _OTHER_ACRONYMS if claimcheck._is_acronym(fig.text) else _OTHER_NAMES
            new, kind = rng.choice([n for n in others if n.lower() not in page_text.lower()]), "name"
        if new == fig.text or kind in out:
            continue
        out[kind] = (kind, claim[:fig.at] + new + claim[fig.at + len(fig.text):], new)
    return list(out.values())


# -- the claims --------------------------------------------------------------------------------------

def build(texts: list[tuple[str, str]], per_page: int, group: int, seed: int = 17) -> tuple[list[Case], list[dict]]:
    rng = random.Random(seed)
    cases: list[Case] = []
    runs: list[dict] = []
    for g in range(0, len(texts), group):
        members = texts[g:g + group]
        runs.append({i + 1: text for i, (_, text) in enumerate(members)})
        for i, (file, text) in enumerate(members):
            sents = [s for s in extractive.sentences(text)
                     if 6 <= len(s.split()) <= 45 and claimcheck.figures(s) and "](" not in s]
            if not sents:
                continue
            # Figures spelt another way: from every sentence of the page where a spelling can change.
            for sentence in [s for s in sents if reformat(s)][:per_page]:
                cases.append(Case(file, len(runs) - 1, i + 1, reformat(sentence), True, "reformatted"))
            step = max(1, len(sents) // per_page)
            for j in range(0, len(sents), step)[:per_page]:
                sentence = sents[j]
                made = {"verbatim": sentence, "reworded": reword(sentence, rng), "loose": loosen(sentence, rng)}
                clause = figure_clause(sentence)
                if clause:
                    made["clause"] = clause
                if j + 1 < len(sents):
                    made["merged"] = sentence.rstrip(".!?") + "; " + sents[j + 1]
                for variant, claim in made.items():
                    cases.append(Case(file, len(runs) - 1, i + 1, claim, True, variant))
                for variant in ("verbatim", "reworded"):
                    for kind, claim, new in change(made[variant], text, rng):
                        cases.append(Case(file, len(runs) - 1, i + 1, claim, False, kind, new))
                if len(members) > 1:  # the sentence cited to another source of its run
                    wrong = (i + 1) % len(members) + 1
                    cases.append(Case(file, len(runs) - 1, wrong, sentence, False, "wrong source", str(i + 1)))
    # Sentences of pages outside a run, cited to one of its sources: found in none of them.
    # (in the cited source's language: a claim in another language is left unchecked, as a translation may be)
    for g, sources in enumerate(runs):
        outside = [t for t in texts if t[1] not in sources.values()]
        for n, (file, text) in enumerate(outside[:: max(1, len(outside) // 6)][:6]):
            sents = [s for s in extractive.sentences(text) if 8 <= len(s.split()) <= 40]
            cited = [sid for sid, t in sources.items() if claimcheck.language(t[:5000]) == claimcheck.language(text[:5000])]
            if sents and cited:
                cases.append(Case(file, g, cited[n % len(cited)], sents[len(sents) // 2], False, "invented"))
    return cases, runs


def run(cases: list[Case], runs: list[dict]) -> tuple[list[claimcheck.Verdict], list[float], float]:
    verdicts, times = [], []
    started = time.perf_counter()
    for case in cases:
        claim = claimcheck.Claim(text=case.text, cited=[case.cited], start=0, end=len(case.text))
        t0 = time.perf_counter()
        verdicts.append(claimcheck.check(claim, runs[case.group]))
        times.append(time.perf_counter() - t0)
    return verdicts, times, time.perf_counter() - started


def right(case: Case, verdict: claimcheck.Verdict) -> bool:
    if case.true:
        return not verdict.failed
    if case.variant == "wrong source":
        return verdict.verdict == "found elsewhere" and str(verdict.source) == case.changed
    if case.variant == "invented":
        return verdict.verdict == "not found"
    return verdict.failed


def outcome(cases: list[Case], verdicts: list[claimcheck.Verdict]) -> dict[str, tuple[int, int]]:
    """(right, of how many) for the groups the targets speak of."""
    groups = {"true claims not failed": lambda c: c.true, "true claims quoted": lambda c: c.true,
              "changed figures caught": lambda c: c.variant in ("number", "year", "date", "name"),
              "wrong source found elsewhere": lambda c: c.variant == "wrong source",
              "invented not found": lambda c: c.variant == "invented"}
    out = {}
    for name, member in groups.items():
        items = [(c, v) for c, v in zip(cases, verdicts) if member(c)]
        good = sum(v.verdict == "quoted" if name == "true claims quoted" else right(c, v) for c, v in items)
        out[name] = (good, len(items))
    return out


def sweep(cases: list[Case], runs: list[dict]) -> None:
    """Each threshold varied in turn, the others at the module's values."""
    chosen = (claimcheck.QUOTED, claimcheck.MATCHED, claimcheck.PARAPHRASE)
    trials = [chosen] + [(q, chosen[1], chosen[2]) for q in (0.7, 0.9)] \
        + [(chosen[0], m, chosen[2]) for m in (0.3, 0.4, 0.6, 0.7)] \
        + [(chosen[0], chosen[1], p) for p in (0.15, 0.2, 0.3, 0.4)]
    header = None
    for trial in trials:
        claimcheck.QUOTED, claimcheck.MATCHED, claimcheck.PARAPHRASE = trial
        verdicts, _, _ = run(cases, runs)
        result = outcome(cases, verdicts)
        if header is None:
            header = list(result)
            print("| QUOTED, MATCHED, PARAPHRASE | " + " | ".join(header) + " |")
            print("| --- | " + " | ".join("---" for _ in header) + " |")
        label = ", ".join(f"{x:.2f}" for x in trial) + (" (chosen)" if trial == chosen else "")
        print(f"| {label} | " + " | ".join(f"{result[h][0]}/{result[h][1]} ({100 * result[h][0] / max(result[h][1], 1):.1f}%)"
                                          for h in header) + " |", flush=True)
    claimcheck.QUOTED, claimcheck.MATCHED, claimcheck.PARAPHRASE = chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--per-page", type=int, default=6, help="sentences taken from each page")
    parser.add_argument("--group", type=int, default=8, help="sources in each run")
    parser.add_argument("--thresholds", help="QUOTED,MATCHED,PARAPHRASE to try instead of the module's")
    parser.add_argument("--failures", action="store_true", help="list every claim the first pass got wrong")
    parser.add_argument("--sweep", action="store_true", help="vary each threshold in turn and tabulate the outcome")
    args = parser.parse_args()
    if not (args.corpus / "expectations.json").is_file():
        sys.exit(f"no corpus at {args.corpus} (expected expectations.json there; "
                 "the 65 real pages of shared/corpus/web-real beside the checkout)")
    if args.thresholds:
        claimcheck.QUOTED, claimcheck.MATCHED, claimcheck.PARAPHRASE = (float(x) for x in args.thresholds.split(","))
    texts = load_texts(args.corpus)
    cases, runs = build(texts, args.per_page, args.group)
    if args.sweep:
        return sweep(cases, runs)
    verdicts, times, total = run(cases, runs)

    print(f"{len(texts)} pages in {len(runs)} runs of up to {args.group} sources; {len(cases)} claims "
          f"({sum(c.true for c in cases)} true, {sum(not c.true for c in cases)} false); thresholds "
          f"QUOTED={claimcheck.QUOTED} MATCHED={claimcheck.MATCHED} PARAPHRASE={claimcheck.PARAPHRASE}\n")
    print("| claims | n | right | " + " | ".join(claimcheck.VERDICTS) + " |")
    print("| --- | --- | --- | " + " | ".join("---" for _ in claimcheck.VERDICTS) + " |")
    rows: dict[tuple[bool, str], list[tuple[Case, claimcheck.Verdict]]] = defaultdict(list)
    for case, verdict in zip(cases, verdicts):
        rows[(case.true, case.variant)].append((case, verdict))
    order = ["verbatim", "reworded", "reformatted", "clause", "merged", "loose", "number", "year", "date", "name",
             "wrong source", "invented"]
    for truth in (True, False):
        group = [(c, v) for (t, _), items in rows.items() if t == truth for c, v in items]
        for key in [(truth, o) for o in order if (truth, o) in rows] + [(truth, "all")]:
            items = rows[key] if key[1] != "all" else group
            counts = Counter(v.verdict for _, v in items)
            ok = sum(right(c, v) for c, v in items)
            label = f"{'true' if truth else 'false'}, {key[1]}"
            if key[1] == "all":
                label = f"**{label}**"
            print(f"| {label} | {len(items)} | {ok} ({100 * ok / max(len(items), 1):.1f}%) | "
                  + " | ".join(str(counts.get(name, 0)) for name in claimcheck.VERDICTS) + " |")
    false = [(c, v) for c, v in zip(cases, verdicts) if not c.true and c.variant in ("number", "year", "date", "name")]
    named = sum(v.verdict == "figure not in source" and c.changed in v.missing for c, v in false)
    true_failed = sum(v.failed for c, v in zip(cases, verdicts) if c.true)
    caught = sum(v.failed for _, v in false)
    print(f"\ntrue claims failed: {true_failed} (target 0); changed figures caught: {caught}/{len(false)} "
          f"({100 * caught / max(len(false), 1):.1f}%, target 90%), named as the missing figure: {named}")
    ms = [t * 1000 for t in times]
    print(f"time per claim: mean {statistics.mean(ms):.2f} ms, median {statistics.median(ms):.2f} ms, "
          f"p95 {sorted(ms)[int(0.95 * len(ms))]:.2f} ms, max {max(ms):.1f} ms (the first claim of a run "
          f"reads its sources); {total:.2f} s for all")
    if args.failures:
        for case, verdict in zip(cases, verdicts):
            if not right(case, verdict):
                print(f"\n[{case.page} {case.variant} {'true' if case.true else 'false'}"
                      f"{' changed ' + repr(case.changed) if case.changed else ''}] {verdict.verdict} "
                      f"score {verdict.score:.2f} missing {verdict.missing} source {verdict.source}\n"
                      f"  claim:   {case.text}\n  passage: {verdict.passage[:400]}")


if __name__ == "__main__":
    main()
