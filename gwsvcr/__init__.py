"""gwsvcr: record and replay Genesys Web Services sessions, CometD long-polls included, with their timing."""

__version__ = "0.1.0"
