"""The checks behind the exercise notebooks: one module ``exNN_<name>.py`` per exercise.

Each module defines ``EXERCISE = Exercise("NN_<notebook stem>", [items...])``; see
``tlkit/course/exercises.py`` for how an item collects evidence in the learner's kernel and judges it.
"""
