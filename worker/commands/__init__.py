"""One module per ``kofn`` subcommand, each with ``register(subparsers)``."""
