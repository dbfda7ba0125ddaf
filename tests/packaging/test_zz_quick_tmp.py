from pathlib import Path
import pytest
from test_deb import test_install_run_headless_uninstall  # noqa: F401


@pytest.fixture(scope="module")
def built():
    return Path("/tmp/pdist/pachtray"), Path("/tmp/pdist/pachtray_0.2.0_amd64.deb")
