"""The log formats midway writes (``midway.console`` writes them), named apart so that the
command line can offer the choice without loading the logging machinery for ``--help``."""

LOG_FORMATS = ("plain", "json")
FORMAT_VARIABLE = "MIDWAY_LOG_FORMAT"
"""The environment variable that picks the format (``--log-format`` sets it)."""
