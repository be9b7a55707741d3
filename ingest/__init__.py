"""Ingest: data-set files (the data contract, or foreign files plus a mapping) into Neo4j."""

from ringscope.ingest.contract import IngestError, IngestFormatError, MappingError, Reason
from ringscope.ingest.loader import load
from ringscope.ingest.report import LoadReport, SourceReport

__all__ = [
    "IngestError",
    "IngestFormatError",
    "LoadReport",
    "MappingError",
    "Reason",
    "SourceReport",
    "load",
]
