"""One module per ``daon`` subcommand.

Each module defines ``add_parser(subparsers)`` which registers its subcommand and sets
``handler=<callable(args) -> int>`` with ``set_defaults``. Handlers build their settings from
``daon.settings.load_settings(args)`` (environment, optional TOML) and pass them down; nothing
is read at import time. Modules are imported only when listed in ``daon.cli.COMMANDS``.
"""
