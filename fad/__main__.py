"""`python -m fad ...` is the same as the `fad` console script."""

from fad.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
