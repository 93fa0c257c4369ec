"""``python -m inftd.daemon.cli``: the ``inftd`` command."""

from inftd.daemon.cli.main import main

raise SystemExit(main())
