"""``python -m hrf`` runs the command line (what ``torchrun``/``accelerate launch -m hrf`` use)."""

from hrf.cli.main import main

raise SystemExit(main())
