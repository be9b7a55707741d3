"""Progress of a load on a terminal."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from ringscope.ingest.report import SourceReport


class _Progress:
    """Rich progress bars on a terminal (one for reading, one for writing); silent otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.bar: Progress | None = None
        self.tasks: dict[str, Any] = {}
        if enabled:
            self.bar = Progress(
                TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/"
                "{task.total} buckets"), TimeElapsedColumn(), console=Console(stderr=True),
                transient=False,
            )  # fmt: skip
            self.bar.start()

    def start(self, name: str, report: SourceReport, what: str, total: int | None = None) -> None:
        if self.bar is None:
            return
        desc = f"{report.file} -> {report.table}: {what}"
        if name not in self.tasks:
            self.tasks[name] = self.bar.add_task(desc, total=total)
        self.bar.reset(self.tasks[name], description=desc, total=total)

    def advance(self, name: str) -> None:
        if self.bar is not None and name in self.tasks:
            self.bar.advance(self.tasks[name])

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
