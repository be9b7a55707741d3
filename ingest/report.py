"""The load's report: what happened to each source, its totals, and its rendering (a rich table
on stderr; ``report.json`` next to the quarantine file)."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table as RichTable


@dataclass
class SourceReport:
    """What happened to one source: a contract table file, or one output of a mapped file."""

    file: str
    table: str
    output: str | None = None
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    rows_skipped_by_mapping: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    batches_written: int = 0
    batches_skipped: int = 0
    nodes_created: int = 0
    relationships_created: int = 0
    properties_set: int = 0
    read_s: float = 0.0  # reading, normalising and bucketing (and payments' de-duplication)
    write_s: float = 0.0  # reducing the buckets and writing them


@dataclass
class LoadReport:
    run_id: str
    directory: str
    mapping: str | None
    report_dir: str
    quarantine_file: str
    started_at: str
    elapsed_s: float = 0.0
    mode: str = "cypher"  # or "bulk": the offline importer, then labels through Cypher
    import_s: float = 0.0  # bulk: importer run, restart and schema (part of elapsed_s)
    import_bytes: int = 0  # bulk: size of the importer's CSV input
    schema_s: float = 0.0  # bulk: building the constraints' indexes after the import
    sources: list[SourceReport] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # e.g. files of the directory not read

    @property
    def rows_read(self) -> int:
        return sum(s.rows_read for s in self.sources)

    @property
    def rows_loaded(self) -> int:
        return sum(s.rows_loaded for s in self.sources)

    @property
    def rows_quarantined(self) -> int:
        return sum(s.rows_quarantined for s in self.sources)

    @property
    def nodes_created(self) -> int:
        return sum(s.nodes_created for s in self.sources)

    @property
    def relationships_created(self) -> int:
        return sum(s.relationships_created for s in self.sources)

    @property
    def properties_set(self) -> int:
        return sum(s.properties_set for s in self.sources)

    def reasons(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for s in self.sources:
            total.update(s.reasons)
        return total

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["totals"] = {
            "rows_read": self.rows_read,
            "rows_loaded": self.rows_loaded,
            "rows_quarantined": self.rows_quarantined,
            "nodes_created": self.nodes_created,
            "relationships_created": self.relationships_created,
            "properties_set": self.properties_set,
        }
        return doc

    def table(self) -> RichTable:
        """The summary as a rich table, one line per source plus a total."""
        t = RichTable(title=f"Ingest run {self.run_id} ({self.elapsed_s:.1f} s)")
        for col in (
            "source",
            "table",
            "read",
            "loaded",
            "quarantined",
            "batches",
            "nodes+",
            "rels+",
            "props set",
        ):
            t.add_column(col, justify="left" if col in ("source", "table") else "right")
        for s in self.sources:
            t.add_row(
                s.file if s.output is None else f"{s.file} [{s.output}]",
                s.table,
                f"{s.rows_read:,}",
                f"{s.rows_loaded:,}",
                f"{s.rows_quarantined:,}",
                f"{s.batches_written}/{s.batches}"
                + (f" ({s.batches_skipped} done before)" if s.batches_skipped else ""),
                f"{s.nodes_created:,}",
                f"{s.relationships_created:,}",
                f"{s.properties_set:,}",
            )
        t.add_section()
        t.add_row(
            "total", "", f"{self.rows_read:,}", f"{self.rows_loaded:,}",
            f"{self.rows_quarantined:,}", "", f"{self.nodes_created:,}",
            f"{self.relationships_created:,}", f"{self.properties_set:,}",
        )  # fmt: skip
        return t

    def render(self, console: Console | None = None) -> None:
        """Print the summary table and, when rows were refused, why and where they went."""
        console = console or Console(stderr=True)
        console.print(self.table())
        for warning in self.warnings:
            console.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False)
        reasons = self.reasons()
        if reasons:
            console.print(
                "Quarantined: "
                + ", ".join(f"{n:,} {r}" for r, n in reasons.most_common())
                + f" -> {self.quarantine_file}",
                highlight=False,
            )
        console.print(f"Report: {Path(self.report_dir) / 'report.json'}", highlight=False)
