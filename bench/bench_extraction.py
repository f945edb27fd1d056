"""How well the built-in fetcher keeps a page's content and drops its boilerplate, per extraction setting.

    python bench/bench_extraction.py [--corpus DIR] [--only NAME ...] [--failures]

Runs the fetcher's HTML conversion (:func:`agent.sources.convert.html_convert`, the path
``WebFetcher`` takes for every HTML page) over the 65 real saved pages of ``shared/corpus/web-real``
(beside the checkout), once per trafilatura setting below, and scores each against the corpus's
expectations: **present** is the share of phrases of the main content found in the text, **absent**
the share of boilerplate phrases (navigation, teasers, footers) not found. Phrases match ignoring
whitespace differences. ``--failures`` lists, per page, the phrases each setting got wrong.

The setting the fetcher uses is :data:`agent.sources.convert.EXTRACTION`, marked ``*``; it was chosen
as the one with the best present and absent scores together (bench/README.md has the table).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus" / "web-real"
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from agent.errors import SourceError  # noqa: E402
from agent.sources.convert import EXTRACTION, html_convert  # noqa: E402

#: The settings compared: overrides of EXTRACTION.
SETTINGS: dict[str, dict[str, Any]] = {
    "precision (before)": {"favor_precision": True, "include_comments": False},
    "precision+comments": {"favor_precision": True, "include_comments": True},
    "default": {"include_comments": False},
    "default+comments": {"include_comments": True},
    "recall": {"favor_recall": True, "include_comments": False},
    "recall+comments": {"favor_recall": True, "include_comments": True},
    "default+comments-emphasis": {"include_comments": True, "keep_emphasis": False},
    "default+comments-tables": {"include_comments": True, "include_tables": False},
    "default+comments+links": {"include_comments": True, "include_links": True},
    "default+comments+fast": {"include_comments": True, "fast": True},
}


@dataclass
class Page:
    file: str
    url: str
    html: bytes
    present: list[str]
    absent: list[str]


@dataclass
class Score:
    present: int = 0
    present_total: int = 0
    absent: int = 0
    absent_total: int = 0
    seconds: float = 0.0
    #: file -> (phrases missing, boilerplate kept, error)
    failures: dict[str, tuple[list[str], list[str], str]] = field(default_factory=dict)
    #: every text produced, by file
    texts: dict[str, str] = field(default_factory=dict)

    @property
    def present_pct(self) -> float:
        return 100.0 * self.present / max(1, self.present_total)

    @property
    def absent_pct(self) -> float:
        return 100.0 * self.absent / max(1, self.absent_total)


def load_corpus(corpus: Path = CORPUS) -> list[Page]:
    """The corpus's pages with their expectations (``expectations.json``)."""
    items = json.loads((corpus / "expectations.json").read_text(encoding="utf-8"))
    return [Page(file=item["file"], url=item["original_url"], html=(corpus / item["file"]).read_bytes(),
                 present=list(item["present"]), absent=list(item["absent"])) for item in items]


def _norm(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).split())


def tally(pages: list[Page], texts: dict[str, str], errors: dict[str, str] | None = None) -> Score:
    """Score ``texts`` (by page file) against the pages' phrases; a page with no text keeps none."""
    result = Score(texts=dict(texts))
    for page in pages:
        flat = _norm(texts.get(page.file, ""))
        missing = [p for p in page.present if _norm(p) not in flat]
        kept = [p for p in page.absent if _norm(p) in flat]
        result.present += len(page.present) - len(missing)
        result.present_total += len(page.present)
        result.absent += len(page.absent) - len(kept)
        result.absent_total += len(page.absent)
        error = (errors or {}).get(page.file, "")
        if missing or kept or error:
            result.failures[page.file] = (missing, kept, error)
    return result


def score(pages: list[Page], **settings: Any) -> Score:
    """Convert every page with ``settings`` (overrides of EXTRACTION) and count phrases kept and dropped.

    A page the converter refuses (a SourceError) keeps none of its phrases and drops all of its
    boilerplate."""
    texts: dict[str, str] = {}
    errors: dict[str, str] = {}
    started = time.perf_counter()
    for page in pages:
        try:
            texts[page.file] = html_convert(page.html, page.url, **settings).text
        except SourceError as exc:
            texts[page.file], errors[page.file] = "", exc.message
    result = tally(pages, texts, errors)
    result.seconds = time.perf_counter() - started
    return result


def is_chosen(settings: dict[str, Any]) -> bool:
    """Whether ``settings`` come to the fetcher's own EXTRACTION."""
    return {**EXTRACTION, **settings} == EXTRACTION


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--only", nargs="*", choices=sorted(SETTINGS), help="settings to run (default: all)")
    parser.add_argument("--failures", action="store_true", help="list each page's wrong phrases per setting")
    args = parser.parse_args()
    if not (args.corpus / "expectations.json").is_file():
        sys.exit(f"no corpus at {args.corpus} (expected expectations.json there)")
    pages = load_corpus(args.corpus)
    print(f"{len(pages)} pages, {sum(len(p.present) for p in pages)} phrases present, "
          f"{sum(len(p.absent) for p in pages)} absent; * is the fetcher's setting {EXTRACTION}\n")
    print(f"| setting | present | absent | sum | pages wrong | seconds |")
    print(f"| --- | --- | --- | --- | --- | --- |")
    for name in args.only or list(SETTINGS):
        result = score(pages, **SETTINGS[name])
        mark = " *" if is_chosen(SETTINGS[name]) else ""
        print(f"| {name}{mark} | {result.present_pct:.1f}% ({result.present}/{result.present_total}) "
              f"| {result.absent_pct:.1f}% ({result.absent}/{result.absent_total}) "
              f"| {result.present_pct + result.absent_pct:.1f} | {len(result.failures)} | {result.seconds:.1f} |",
              flush=True)
        if args.failures:
            for file, (missing, kept, error) in sorted(result.failures.items()):
                print(f"    {file}: " + "; ".join(
                    [f"error {error}"] * bool(error) + [f"missing {p!r}" for p in missing]
                    + [f"kept {p!r}" for p in kept]))


if __name__ == "__main__":
    main()
