import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session")
def test_files_dir() -> Path:
    """pydicom's bundled test files."""
    from pydicom.data import get_testdata_file

    return Path(get_testdata_file("CT_small.dcm")).parent


@pytest.fixture(scope="session")
def all_test_files(test_files_dir) -> list[Path]:
    return sorted(p for p in test_files_dir.rglob("*") if p.is_file())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    """Name the test to peers.check_marked before its fixtures start anything (module fixtures included)."""
    import peers

    peers.current_test = item
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item):
    yield
    import peers

    peers.current_test = None
