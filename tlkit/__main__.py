"""``python -m tlkit ...`` is the ``tlkit`` command (see ``tlkit/course/cli.py``)."""
from .course.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
