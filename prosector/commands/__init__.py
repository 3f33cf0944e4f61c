"""CLI subcommands, one module each; `prosector.cli` discovers them."""
