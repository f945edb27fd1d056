"""Source texts set aside on disk while a run goes on, so its memory is bounded by its summaries.

A source's text is needed while it is read and summarized, then again only for the claim check and the
JSON report, one source at a time. :class:`Spill` keeps each text in an anonymous temporary file (in
the cache directory when there is one; unlinked as soon as it is made, so nothing is left behind by a
run that ends or is killed) and hands back a :class:`SpilledText` that reads it again on demand.
"""

from __future__ import annotations

import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterator, Mapping

from agent.errors import StoreError


class Spill:
    """An append-only file of texts, read back by offset; safe to share between threads."""

    def __init__(self, directory: str | Path | None = None) -> None:
        where = Path(directory) if directory is not None else None
        self._where = where if where is not None and where.is_dir() else Path(tempfile.gettempdir())
        try:
            self._file: IO[bytes] = tempfile.TemporaryFile(dir=self._where, buffering=0)  # a failed write fails here
        except OSError as exc:
            raise self._failed(exc) from exc
        self._end = 0
        self._lock = threading.Lock()

    def _failed(self, exc: OSError) -> StoreError:
        # As fatal as a result that cannot be stored: the run stops before paying for anything more.
        return StoreError(f"cannot set source texts aside in {self._where}: {exc.strerror or exc}",
                          hint="free space there, or pass --cache-dir (or RESEARCH_CACHE_DIR) with room")

    def put(self, text: str) -> "SpilledText":
        data = text.encode("utf-8", "surrogatepass")
        with self._lock:
            offset = self._end
            try:
                self._file.seek(offset)
                view = memoryview(data)
                while view:
                    view = view[self._file.write(view):]
            except OSError as exc:
                raise self._failed(exc) from exc
            self._end += len(data)
        return SpilledText(self, offset, len(data))

    def read(self, offset: int, size: int) -> str:
        with self._lock:
            self._file.seek(offset)
            data = self._file.read(size)
        return data.decode("utf-8", "surrogatepass")


@dataclass(frozen=True)
class SpilledText:
    """Where one text lies in a :class:`Spill`; :meth:`read` returns it."""

    spill: Spill
    offset: int
    size: int  # in bytes

    def read(self) -> str:
        return self.spill.read(self.offset, self.size)

    def __deepcopy__(self, memo: dict) -> "SpilledText":
        return self  # the file is shared, never copied (``dataclasses.asdict`` deep-copies field values)


class LazyTexts(Mapping[int, str]):
    """Numbers to texts, each made by ``read(item)`` only when asked for (the claim check reads a few at a time)."""

    def __init__(self, items: Mapping[int, Any], read: Any) -> None:
        self._items = items
        self._read = read

    def __getitem__(self, key: int) -> str:
        return self._read(self._items[key])

    def __iter__(self) -> Iterator[int]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
