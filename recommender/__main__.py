"""``python -m recommender``: the same command line as ``harmonya``."""

from recommender.cli import main

main()
