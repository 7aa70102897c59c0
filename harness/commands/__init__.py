"""One module per CLI subcommand: `add_parser(subparsers)` sets `func` to the command's main."""


def add_common(parser, dataset: bool = True) -> None:
    """Options most commands share: the data set, the profile, key=value overrides."""
    if dataset:
        parser.add_argument("--dataset", "-d", default="beauty",
                            help="configured data set name or a prepared directory (default: beauty)")
    parser.add_argument("--profile", default=None, help="mini (default) or paper; env HARNESS_PROFILE")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides, e.g. train.max_epochs=5 lr=1e-3")
