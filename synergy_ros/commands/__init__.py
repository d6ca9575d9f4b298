"""Subcommands of the `synergy` CLI (one module each: HELP, add_arguments, run)."""
