"""Subcommands that are not Trainer stages: `report` reads a finished run, `ensemble` trains several."""
