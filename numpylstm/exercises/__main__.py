"""python -m numpylstm.exercises: see numpylstm/exercises/cli.py and docs/exercises.md."""

import sys

from .cli import main

sys.exit(main())
