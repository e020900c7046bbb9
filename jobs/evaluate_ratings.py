"""``python -m jobs.evaluate_ratings``: the rating-file command under its first name.

The command lives in ``evaluation.ratings`` (see its docstring for the options); this name is
kept because outside users call it. It is the one place the product package reaches the
evaluation package, declared in the import contracts.
"""

from evaluation.ratings import main

if __name__ == "__main__":
    raise SystemExit(main())
