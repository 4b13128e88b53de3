"""``python -m streamsep``: the command line (:mod:`streamsep.cli.main`)."""

from streamsep.cli.main import run

if __name__ == "__main__":
    run()
