"""One module per ``marginwatch`` subcommand, each with ``add_arguments`` and ``run``."""
