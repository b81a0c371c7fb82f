"""One module per digitnet subcommand, each with add_parser(subparsers) and run(args)."""
