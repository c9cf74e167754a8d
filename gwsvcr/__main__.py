"""``python -m gwsvcr``: the same as the ``gwsvcr`` command."""

from gwsvcr.cli.entry import main

main()
