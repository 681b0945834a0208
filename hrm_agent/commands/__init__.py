"""Small ``hrm`` subcommands whose real work lives elsewhere (puzzles, viewer, benchmarks)."""
