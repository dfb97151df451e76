"""``python -m gancore`` (and ``torchrun -m gancore``) runs the CLI."""

from gancore.cli import main

raise SystemExit(main())
