"""One module per CLI subcommand: `add_parser(subparsers)` sets `func` to the command's main."""


def add_common(parser, dataset: bool = True) -> None:
    """Options most commands share: the data set, the profile, key=value overrides."""
    if dataset:
        parser.add_argument("--dataset", "-d", default="beauty",
                            help="configured data set name or a prepared directory (default: beauty)")
    parser.add_argument("--profile", default=None, help="mini (default) or paper; env HARNESS_PROFILE")
    # default=[]: argparse counts a nargs="*" positional without a default as required, and names
    # it so in its error lines ("required: name, key=value")
    parser.add_argument("overrides", nargs="*", default=[], metavar="key=value",
                        help="config overrides, e.g. train.max_epochs=5 lr=1e-3")


def add_address(parser) -> None:
    """--address: the Ray cluster an `--executor ray` command joins."""
    parser.add_argument("--address", default=None,
                        help="with --executor ray: the cluster to join (HOST:6379 or auto; env RAY_ADDRESS); "
                             "without it, a local Ray (docs/distributed.md)")
