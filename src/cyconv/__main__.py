"""Command line: ``python -m cyconv [demo | info | bench]`` (demo is the default)."""
import argparse


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m cyconv",
        description="cyconv: fast 2-D convolution on the CPU.",
    )
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("demo", help="work the course exercise and time cyconv against SciPy "
                               "(the default)")
    sub.add_parser("info", help="show the version, BLAS, threads and build flags")
    bench = sub.add_parser(
        "bench", help="time cyconv against SciPy (and PyTorch, OpenCV if installed)",
        description="Time cyconv against scipy.signal.correlate2d, scipy.signal.correlate, "
                    "scipy.ndimage.correlate and, when installed, torch.nn.functional.conv2d "
                    "and cv2.filter2D. Results are checked for agreement before timing.")
    size = bench.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="a short run: fewer cases and repeats")
    size.add_argument("--tiny", action="store_true",
                      help="a smoke run on tiny inputs (seconds; for tests, not for numbers)")
    bench.add_argument("--json", metavar="FILE", help="write the results as JSON to FILE")
    bench.add_argument("--plot", metavar="PNG",
                       help="draw the speed ratios to PNG (needs matplotlib: "
                            "pip install 'cyconv[plot]')")
    args = parser.parse_args(argv)
    # Import only what the command needs: bench and info load more than demo.
    if args.command in (None, "demo"):
        from cyconv import _demo

        _demo.main()
    elif args.command == "info":
        from cyconv import _info

        _info.main()
    else:
        from cyconv import _cli_bench

        _cli_bench.main(args)


if __name__ == "__main__":
    main()
