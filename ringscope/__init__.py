"""RingScope: graph-based fraud ring detection."""

__version__ = "0.1.0"
