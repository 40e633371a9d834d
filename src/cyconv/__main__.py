"""Command line: ``python -m cyconv [demo]``."""
import argparse

from cyconv import _demo


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m cyconv",
        description="cyconv: fast 2-D convolution on the CPU.",
    )
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("demo", help="work the course exercise and time cyconv against SciPy "
                               "(the default)")
    args = parser.parse_args(argv)
    if args.command in (None, "demo"):
        _demo.main()


if __name__ == "__main__":
    main()
