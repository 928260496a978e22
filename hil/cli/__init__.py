"""The ``hil`` command. Thin: parses arguments, calls the parts, shows results with rich.

One module per sub-app (``sim``, ``bench``, ``train``, ``radio``, ``capture``, ``place``, ``baim``);
:mod:`hil.cli._common` holds the app, the console and the one error-to-exit-code helper
(``[Note: errors and exit codes]``). Heavy imports (torch, zmq, adi, ray) happen inside the commands so
``hil --help`` stays fast and works where optional libraries are absent.
"""

# each module registers its commands; the import order is the order of `hil --help`
from hil.cli import sim, bench, train, radio, capture, place, baim  # noqa: F401, I001
from hil.cli._common import app, main

__all__ = ["app", "main"]
