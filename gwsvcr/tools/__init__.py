"""Cassette tools behind ``gwsvcr show``, ``diff``, ``har`` and ``report``; ``progress`` reports long work."""
