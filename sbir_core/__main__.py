"""``python -m sbir_core`` is the ``sbir`` command line."""
from sbir_core.cli import main

raise SystemExit(main())
