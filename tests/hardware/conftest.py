"""Hardware tests run only with ``--radio-uri URI`` (the option is registered in tests/conftest.py)."""

import pytest


@pytest.fixture
def radio_uri(request) -> str:
    uri = request.config.getoption("--radio-uri", default=None)
    if not uri:
        pytest.skip("needs a real board: pass --radio-uri ip:192.168.2.1 (or usb:...)")
    return uri
