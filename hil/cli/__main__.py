"""``python -m hil.cli``: the same as the ``hil`` console script."""

from hil.cli._common import main

main()
