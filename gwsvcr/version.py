"""The version of gwsvcr, declared once: the package metadata (pyproject.toml), ``gwsvcr --version``, the recorder
line of a cassette header and the creator of a HAR file read it from here."""

__version__ = "0.1.0"
