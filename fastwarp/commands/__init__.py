"""Subcommands of the fastwarp console script (see fastwarp.cli)."""
