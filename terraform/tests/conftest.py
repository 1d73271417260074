import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from tfconfig import load  # noqa: E402

TERRAFORM = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def cfg():
    """The configuration under test: terraform/, or SUITEX_TF_DIR (a deliberately broken copy)."""
    return load(os.environ.get("SUITEX_TF_DIR", TERRAFORM))
