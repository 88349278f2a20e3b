"""``python -m datatorag``: the command line."""

from datatorag.entrypoints.cli import main

if __name__ == "__main__":
    main()
