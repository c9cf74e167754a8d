"""The click application behind the gwsvcr command."""
