"""`prosector weights list|install`: where each engine's weights are, and getting them."""
from __future__ import annotations

WEIGHTS = ("sat-nano", "sat-pro")


def register(sub) -> None:
    parser = sub.add_parser("weights", help="list or install model weights (SAT-Nano, SAT-Pro)",
                            description="Model weights live under $PROSECTOR_HOME (default ~/.prosector).")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.add_parser("list", help="which weights are installed, and where")
    install = actions.add_parser("install", help="download (or copy from --from DIR) and verify weights")
    install.add_argument("name", choices=WEIGHTS)
    install.add_argument("--from", dest="source", metavar="DIR",
                         help="install from files already downloaded (the hub's Nano/ or Pro/ folder, plus BioLORD's vocab.txt and config.json)")
    parser.set_defaults(handler=run)


def run(args) -> int:
    from prosector.models.sat.weights import install_command, locate

    if args.action == "install":
        from prosector.models.sat.install import install

        variant = args.name.split("-", 1)[1]
        done = install(variant, source=args.source)
        print(f"SAT-{variant.capitalize()} installed and verified:")
        print(f"  model         {done.files.model}")
        print(f"  text encoder  {done.files.text_encoder}")
        print(f"  tokenizer     {done.files.tokenizer_dir}")
        return 0
    for name in WEIGHTS:
        files = locate(name.split("-", 1)[1])
        missing = files.missing()
        state = "installed" if not missing else f"missing ({install_command(files.variant)})"
        print(f"{name:9s} {state}: {files.model.parent}")
    return 0
