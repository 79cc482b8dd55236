"""One module per ``nusec`` sub-command; each exposes ``command`` or a typer ``app``."""
