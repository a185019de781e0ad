"""A real two-worker Dask cluster (processes, one thread each), shared by the sweep tests."""

import pytest

distributed = pytest.importorskip("distributed", reason="the [cluster] extra installs dask")


@pytest.fixture(scope="session")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as c:
        yield c


@pytest.fixture
def client(cluster):
    with distributed.Client(cluster) as c:
        yield c
