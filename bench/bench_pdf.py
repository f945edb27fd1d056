"""Eight large PDFs at once: converted in threads (pypdf takes turns on one core) against the worker
processes the fetcher uses for PDFs over ``convert.PROCESS_PDF_BYTES``.

    python bench/bench_pdf.py [--copies 8] [--pages 400]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import io
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.sources import convert  # noqa: E402
from tests.servers.website import make_pdf  # noqa: E402


def big_pdf(pages: int) -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for i in range(pages):
        page = make_pdf([f"Field report page {i}", "Heat pumps kept a seasonal efficiency near three "
                         "through the coldest week of the winter, the installers noted, again and again."] * 20)
        writer.add_page(PdfReader(io.BytesIO(page)).pages[0])
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--pages", type=int, default=400)
    args = parser.parse_args()
    data = big_pdf(args.pages)
    print(f"{args.copies} copies of a {len(data) / 1e6:.2f} MB, {args.pages}-page PDF")
    for label, threshold in (("threads", 1 << 62), ("worker processes", 1)):
        convert.PROCESS_PDF_BYTES = threshold
        if threshold == 1:
            convert.convert(make_pdf(["warm"]), "application/pdf", "warm")  # start the pool before timing
        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.copies) as pool:
            texts = list(pool.map(lambda i: convert.convert(data, "application/pdf", f"copy{i}.pdf").text,
                                  range(args.copies)))
        assert len(set(texts)) == 1
        print(f"{label:>17}: {time.perf_counter() - started:.2f} s")


if __name__ == "__main__":
    main()
