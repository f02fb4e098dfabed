"""One upstream fixture per source (tests/sources/upstreams.py); `upstream` is each of them in turn."""

import pytest

from omicslake.sources import SOURCES
from standins.servers import Zenodo
from tests.conftest import KAGGLE_KEY
from tests.sources import upstreams


@pytest.fixture(params=sorted(SOURCES))
def upstream(request) -> upstreams.Upstream:
    """Every source in the registry: one without an `<source>_upstream` fixture fails here."""
    return request.getfixturevalue(f"{request.param}_upstream")


@pytest.fixture
def http_upstream(http_server):
    return upstreams.HTTP(http_server)


@pytest.fixture
def geo_upstream(tmp_path):
    return upstreams.GEO(tmp_path / "upstream")


@pytest.fixture
def zenodo_upstream(http_server):
    return upstreams.Zenodo(Zenodo(http_server))


@pytest.fixture
def kaggle_upstream(kaggle_api):
    return upstreams.Kaggle(kaggle_api, KAGGLE_KEY)


@pytest.fixture
def s3_upstream(s3_server, aws_env):
    return upstreams.S3(s3_server)


@pytest.fixture
def cellxgene_upstream(census, tmp_path):
    return upstreams.CELLxGENE(census, tmp_path / "upstream")
