"""Fixtures of the web tests: `api`, the app running on a migrated database (webapi.py has the helpers)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from webapi import Api, running_api, web_settings


@pytest.fixture
def api(db_url: str, tmp_path: Path) -> Iterator[Api]:
    with running_api(web_settings(db_url, tmp_path)) as running:
        yield running
