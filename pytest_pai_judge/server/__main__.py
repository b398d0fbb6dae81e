"""``python -m pytest_pai_judge.server``: the same as the ``pai-judge-server`` command."""

from .cli import main

raise SystemExit(main())
