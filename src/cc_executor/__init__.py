"""cc-executor: run coding-agent CLIs headlessly, supervised and bounded."""

from cc_executor._version import __version__

__all__ = ["__version__"]
