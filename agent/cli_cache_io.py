"""``research cache export FILE`` and ``research cache import FILE``: step results between stores.

So a team can seed a shared PostgreSQL store from a laptop's cache directory (or the other way round).
The file is JSON lines: a header ``{"durable_research": "results", "version": 1}``, then one
``{"key": KEY, "record": RECORD}`` per stored result, pinned old versions (``KEY@DIGEST``) included, so
runs resumed on the other store still replay what they saw. A record keeps its digest, the time it was
stored and what it cost. Import checks each record's digest against its value, and never replaces a
different value silently: such a key is reported and kept as it is unless ``--overwrite`` (and then
the value it had stays reachable under ``KEY@DIGEST``).

Registered on ``cache_app`` by one import in ``agent/cli.py``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any, IO, Iterator, Optional

import typer

from agent.cli import EXIT_PARTIAL, _edge, _emit_json, _warn, cache_app
from agent.cli_options import CacheDir, Debug, JsonOut, Kind, StoreUrl, store_location
from agent.errors import UsageError

FORMAT = "results"
VERSION = 1

File = Annotated[str, typer.Argument(metavar="FILE", help="The JSON lines file ('-' for standard output or input).")]


def _open(where: Any) -> Any:
    from agent.storage import open_storage

    store, _ = open_storage(where, journal=False)
    return store


@cache_app.command("export")
def cache_export(
    file: File,
    kind: Kind = None,
    cache_dir: CacheDir = None,
    store: StoreUrl = None,
    as_json: JsonOut = False,
    debug: Debug = False,
) -> None:
    """Write the stored results (pinned old versions too) as JSON lines, for 'research cache import'."""
    with _edge(debug):
        from agent.storage import locate

        where = locate(store_location(store, cache_dir))
        results = _open(where)
        count = 0
        try:
            with _output(file) as out:
                out.write(json.dumps({"durable_research": FORMAT, "version": VERSION}) + "\n")
                for key, record in results.records():
                    if kind is not None and record.get("kind") != kind:
                        continue
                    out.write(json.dumps({"key": key, "record": record}, ensure_ascii=False) + "\n")
                    count += 1
        finally:
            results.close()
        summary = {"exported": count, "file": file, "store": str(where)}
        if as_json and file != "-":
            _emit_json(summary)
        else:
            (sys.stderr if file == "-" else sys.stdout).write(f"exported {count} results from {where} to {file}\n")


class _output:
    """Standard output, or ``FILE`` written whole or not at all (a temp file renamed into place)."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.tmp: Path | None = None
        self.handle: IO[str] | None = None

    def __enter__(self) -> IO[str]:
        if self.file == "-":
            return sys.stdout
        path = Path(self.file)
        self.tmp = path.with_name(f".{path.name}.tmp")
        try:
            fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # results are private
        except OSError as exc:
            raise UsageError(f"cannot write {self.file}: {exc.strerror or exc}", hint="name a writable file") from exc
        self.handle = os.fdopen(fd, "w", encoding="utf-8")
        return self.handle

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        if self.handle is None:
            return
        self.handle.close()
        if kind is None:
            os.replace(self.tmp, self.file)
        else:
            self.tmp.unlink(missing_ok=True)


def _lines(file: str) -> Iterator[tuple[int, str]]:
    """The numbered lines of ``file`` (``-``: standard input), opened now: a file that cannot be read is
    refused before the store is opened, so bad input writes nothing."""
    if file == "-":
        return enumerate(sys.stdin, 1)
    try:
        handle = open(file, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {file}: {exc.strerror or exc}", hint="name a file written by 'research cache export'") from exc

    def numbered() -> Iterator[tuple[int, str]]:
        with handle:
            yield from enumerate(handle, 1)
    return numbered()


@cache_app.command("import")
def cache_import(
    file: File,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a stored result whose value differs (the old one stays under KEY@DIGEST).")] = False,
    cache_dir: CacheDir = None,
    store: StoreUrl = None,
    as_json: JsonOut = False,
    debug: Debug = False,
) -> None:
    """Read results written by 'research cache export'; a different value already stored is reported
    and kept (exit 3) unless --overwrite."""
    with _edge(debug):
        from agent.store import check_import
        from agent.storage import locate

        where = locate(store_location(store, cache_dir))
        counts = {"added": 0, "same": 0, "replaced": 0}
        conflicts: list[dict[str, Any]] = []
        invalid: list[dict[str, Any]] = []
        lines = _lines(file)
        results = _open(where)
        try:
            for number, line in lines:
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                except ValueError:
                    entry = None
                if isinstance(entry, dict) and "durable_research" in entry:
                    if entry.get("durable_research") != FORMAT or not isinstance(entry.get("version"), int) \
                            or entry["version"] > VERSION:
                        raise UsageError(f"{file} is not a results file this release can read ({line.strip()[:80]})",
                                         hint="export it again with this release's 'research cache export'")
                    continue
                problem = "not JSON" if entry is None else ("not an exported result" if not isinstance(entry, dict)
                                                            else check_import(entry.get("key"), entry.get("record")))
                if problem:
                    invalid.append({"line": number, "reason": problem})
                    _warn(f"{file}:{number}: skipped: {problem}")
                    continue
                key, record = entry["key"], entry["record"]
                outcome = results.put_record(key, record, overwrite=overwrite)
                if outcome == "conflict":
                    previous = results.get(key) or {}
                    conflicts.append({"key": key, "stored": previous.get("digest"), "imported": record["digest"]})
                    _warn(f"{key}: a different result is stored here (digest {str(previous.get('digest'))[:12]}, "
                          f"the file's {record['digest'][:12]}); kept it (--overwrite replaces it)")
                else:
                    counts[outcome] += 1
        finally:
            results.close()
        summary = {**counts, "conflicts": conflicts, "invalid": invalid, "store": str(where)}
        if as_json:
            _emit_json(summary)
        else:
            sys.stdout.write(f"imported into {where}: {counts['added']} added, {counts['same']} already there, "
                             f"{counts['replaced']} replaced, {len(conflicts)} different and kept, "
                             f"{len(invalid)} invalid\n")
        if conflicts or invalid:
            raise typer.Exit(EXIT_PARTIAL)
