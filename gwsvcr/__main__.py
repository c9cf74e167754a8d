"""``python -m gwsvcr``: the same as the ``gwsvcr`` command."""

from gwsvcr.cli.main import main

main(prog_name="gwsvcr")
