"""pytest-pai-judge: judge-model assertions for pytest, and a local PAI-compatible judge server."""

__version__ = "0.1.0"
