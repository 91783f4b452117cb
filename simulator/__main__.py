"""``python -m simulator`` is the ``approxsim`` command."""

from simulator.cli import main

main()
