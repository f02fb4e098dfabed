"""What each source gives the contract suite: its upstream stand-in, able to publish version 1 and 2
of its datasets and to break one of them, and how to read what the lake holds of them.

An `Upstream` asks for `names` (a dataset named `probe` wherever users name datasets: its folder
must never be taken for the probe reports'); `publish(2)` changes the datasets `changed` and no
other; `break_()` breaks the datasets `broken`; `contents(lake)` is what the lake holds of the
changed datasets, `expected[version]` what it must hold after each version; `secrets` (the
credentials the stand-in wants) must be in no file the workflow writes.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

from standins import geo_tree


def csv(rows: int) -> bytes:
    return b"gene,count\n" + b"".join(b"G%d,%d\n" % (i, i * 7) for i in range(rows))


MALFORMED = b"gene,count\nG1,1\nG2,2,2\n"


class Upstream:
    source: str
    names: list[str]
    changed: set[str]
    broken: set[str]
    expected: dict[int, object]
    secrets: tuple[str, ...] = ()

    def block(self):
        """The config's `sources.<source>` block asking for `names`."""
        raise NotImplementedError

    def publish(self, version: int) -> None:
        raise NotImplementedError

    def break_(self) -> None:
        raise NotImplementedError

    def contents(self, lake) -> object:
        raise NotImplementedError


class HTTP(Upstream):
    source, names, changed, broken = "http", ["probe", "genes"], {"probe"}, {"probe"}
    expected = {1: [(3,)], 2: [(4,)]}

    def __init__(self, server):
        self.server = server
        server.add("/genes.csv", csv(5))

    def block(self):
        return [
            {"name": "probe", "url": self.server.url("/probe.csv")},
            {"name": "genes", "url": self.server.url("/genes.csv")},
        ]

    def publish(self, version):
        self.server.add("/probe.csv", csv(2 + version))

    def break_(self):
        self.server.add("/probe.csv", MALFORMED)

    def contents(self, lake):
        return lake.query("SELECT count(*) FROM lake.http.probe")


class GEO(Upstream):
    """A GEO mirror read as `file:` (the FTP and HTTPS listings have their own tests)."""

    source, names, changed, broken = "geo", ["GSE781", "GSE2000"], {"GSE781"}, {"GSE781"}
    expected = {1: [(540,)], 2: [(546,)]}  # 50 + 40 probes x 6 samples; then 41 probes on GPL97

    def __init__(self, root: Path):
        self.mirror = geo_tree.build(root)
        self.matrix = self.mirror / "series/GSEnnn/GSE781/matrix/GSE781-GPL97_series_matrix.txt.gz"

    def block(self):
        return {"base_url": self.mirror.as_uri(), "series": self.names}

    def publish(self, version):
        if version == 2:
            text = geo_tree.matrix_text(
                "GSE781", "GPL97", geo_tree.GSE781_GPL97, 41, seed=3, platforms=["GPL96", "GPL97"]
            )
            geo_tree.write_gz(self.matrix, text)

    def break_(self):
        whole = self.matrix.read_bytes()
        self.matrix.write_bytes(whole[: len(whole) // 2])  # a truncated gzip

    def contents(self, lake):
        return lake.query("SELECT count(*) FROM lake.geo.expression WHERE series_id = 'GSE781'")


class Zenodo(Upstream):
    """`probe` follows concept 600 (its latest version); record 500 stays as it is."""

    source, names, changed, broken = "zenodo", ["probe", "record_500"], {"probe"}, {"probe"}
    expected = {1: [("601", 3)], 2: [("602", 4)]}

    def __init__(self, api):
        self.api = api
        api.publish(500, {"samples.tsv": b"sample\ttissue\nA\tlung\n"})

    def block(self):
        counts = {"counts*": "counts"}
        return {"api_url": self.api.api, "records": [{"concept": 600, "name": "probe", "tables": counts}, {"id": 500}]}

    def publish(self, version):
        self.api.publish(
            600 + version, {"counts.csv.gz": gzip.compress(csv(2 + version))}, concept=600, version=f"v{version}"
        )

    def break_(self):
        self.api.publish(
            603, {"counts.csv.gz": gzip.compress(csv(9))}, concept=600, checksums={"counts.csv.gz": "md5:" + "0" * 32}
        )

    def contents(self, lake):
        return lake.query("SELECT record_id, count(*) FROM lake.zenodo.counts GROUP BY 1")


class Kaggle(Upstream):
    source, names, changed, broken = "kaggle", ["probe", "owner__notes"], {"probe"}, {"probe"}
    expected = {1: [(1, 3)], 2: [(2, 4)]}

    def __init__(self, api, key: str):
        self.api, self.secrets = api, (key,)
        api.publish("owner/notes", 1, {"samples.csv": b"sample,tissue\nA,lung\n"})

    def block(self):
        return {
            "api_endpoint": self.api.endpoint,
            "datasets": [{"ref": "owner/atlas", "name": "probe"}, {"ref": "owner/notes"}],
        }

    def publish(self, version):
        self.api.publish("owner/atlas", version, {"expression.csv": csv(2 + version)})

    def break_(self):
        self.api.publish("owner/atlas", 3, {"expression.csv": MALFORMED})

    def contents(self, lake):
        return lake.query("SELECT version, count(*) FROM lake.kaggle.expression GROUP BY 1")


class S3(Upstream):
    source, names, changed, broken = "s3", ["probe", "other"], {"probe"}, {"probe"}
    expected = {1: [(3,)], 2: [(4,)]}

    def __init__(self, server):
        self.server, self.secrets = server, (server.SECRET,)
        server.put("public", "other/part-1.csv", csv(5))

    def block(self):
        endpoint = self.server.endpoint
        return [{"name": name, "bucket_url": f"s3://public/{name}/", "endpoint_url": endpoint} for name in self.names]

    def publish(self, version):
        self.server.put("public", "probe/part-1.csv", csv(2 + version))

    def break_(self):
        self.server.put("public", "probe/part-2.csv", MALFORMED)

    def contents(self, lake):
        return lake.query("SELECT count(*) FROM lake.s3.probe")


class CELLxGENE(Upstream):
    """A census mirror: a new release changes the query `probe` and the census tables (`census`)."""

    source, names = "cellxgene", ["probe", "census"]
    changed = broken = {"probe", "census"}
    expected = {1: [("2025-11-08", 237)], 2: [("2026-05-01", 237)]}

    def __init__(self, census: str, root: Path):
        self.census, self.uri = census, str(root / "census")

    def block(self):
        lung = "tissue_general == 'lung' and is_primary_data == True"
        query = {"name": "probe", "organism": "homo_sapiens", "obs_value_filter": lung, "chunk_cells": 100}
        return {"census_uri": self.uri, "queries": [query]}

    def publish(self, version):
        from standins.census import build_census

        shutil.rmtree(self.uri, ignore_errors=True)
        if version == 1:
            shutil.copytree(self.census, self.uri)
        else:
            build_census(self.uri, build_date="2026-05-01")

    def break_(self):
        shutil.rmtree(self.uri)
        Path(self.uri).mkdir()  # no census there

    def contents(self, lake):
        return lake.query("SELECT census_version, count(*) FROM lake.cellxgene.obs GROUP BY 1")
