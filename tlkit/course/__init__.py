"""The course machinery, built on the learner's library and kept apart from it.

- ``cli``: the ``tlkit`` command (``tlkit course``, ``finetune``, ``doctor``, ``check``, ``grade``, ...)
- ``doctor``: can this machine run the course?
- ``widgets``: the lessons' explorers and quizzes (ipywidgets), with ``quizzes/*.yaml``
- ``exercises``: exercise items, evidence and verdicts (``tl.exercise("03")``); ``checks/`` holds
  one module per exercise
- ``grading`` and ``release``: ``tlkit grade``/``tlkit check``, and student copies of exercises

Everything here calls the same public functions a learner would; nothing in ``tlkit``'s library
modules imports from here.
"""
