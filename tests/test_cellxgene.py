"""CELLxGENE Census source: a census built on disk in the census's layout (standins/census.py), read
through cellxgene_census and tiledbsoma, checked against `cellxgene_census.get_anndata`."""

from pathlib import Path

import pytest

from omicslake.errors import DatasetError
from omicslake.sources import cellxgene
from tests.conftest import NO_RETRIES, Lake, run_snakemake, started_jobs, workflow_config

pytestmark = pytest.mark.slow  # censuses built and read through tiledbsoma: not in `make test-fast`

LUNG = "tissue_general == 'lung' and is_primary_data == True"
OBS_COLUMNS = ["assay", "cell_type", "tissue", "tissue_general", "disease", "donor_id", "dataset_id"]


def query(name="lung", organism="homo_sapiens", obs_value_filter=LUNG, **extra) -> dict:
    """A query as the config schema fills it in."""
    defaults = {"var_value_filter": None, "obs_columns": OBS_COLUMNS, "x_layer": "raw", "chunk_cells": 100}
    return {"name": name, "organism": organism, "obs_value_filter": obs_value_filter, **defaults, **extra}


def block(census: str, *queries: dict, **settings) -> dict:
    return {"census_version": "2025-11-08", "census_uri": census, "tiledb_config": {}, "read_buffer_mb": 64,
            "queries": list(queries), **settings}  # fmt: skip


def load_all(lake: Lake, census: str, *queries: dict, **settings) -> dict:
    entries = cellxgene.datasets(block(census, *queries, **settings))
    return {name: lake.load(name, entry, "cellxgene") for name, entry in entries.items()}


def anndata(census: str, organism: str, obs_value_filter, var_value_filter=None):
    import cellxgene_census

    with cellxgene_census.open_soma(uri=census) as soma:
        return cellxgene_census.get_anndata(
            soma, organism, obs_value_filter=obs_value_filter, var_value_filter=var_value_filter
        )


def test_lake_tables_equal_get_anndata(lake, census):
    genes = "feature_name in ['CD3D', 'CD14', 'HES4', 'NKG7', 'LYZ']"
    load_all(lake, census, query(), query("cd_genes", var_value_filter=genes), query("mouse", "mus_musculus", None))
    for name, organism, obs_filter, var_filter in [
        ("lung", "homo_sapiens", LUNG, None),
        ("cd_genes", "homo_sapiens", LUNG, genes),
        ("mouse", "mus_musculus", None, None),
    ]:
        expected = anndata(census, organism, obs_filter, var_filter)
        obs = lake.query(
            "SELECT count(*), count(DISTINCT soma_joinid), sum(soma_joinid) FROM lake.cellxgene.obs WHERE query = ?",
            [name],
        )
        assert obs == [(expected.n_obs, expected.n_obs, int(expected.obs["soma_joinid"].sum()))]
        x = lake.query("SELECT count(*), sum(value) FROM lake.cellxgene.x WHERE query = ?", [name])[0]
        assert x[0] == expected.X.nnz and x[1] == pytest.approx(float(expected.X.sum(dtype="float64")), rel=1e-9)
        genes_seen = lake.query("SELECT count(DISTINCT gene_joinid) FROM lake.cellxgene.x WHERE query = ?", [name])
        assert genes_seen == [((expected.X.sum(axis=0) != 0).sum(),)]
        cell_types = dict(
            lake.query("SELECT cell_type, count(*) FROM lake.cellxgene.obs WHERE query = ? GROUP BY 1", [name])
        )
        assert cell_types == expected.obs["cell_type"].astype(str).value_counts().to_dict()
    var = dict(lake.query("SELECT organism, count(DISTINCT feature_id) FROM lake.cellxgene.var GROUP BY 1"))
    assert var == {"homo_sapiens": 765, "mus_musculus": 300}
    # schema 2.4.0: feature_name repeats; feature_id is the key
    duplicates = "SELECT count(*) - count(DISTINCT feature_name) FROM lake.cellxgene.var WHERE organism = ?"
    assert lake.query(duplicates, ["homo_sapiens"]) == [(1,)]
    # x joins var and obs on the census's joinids
    joined = lake.query(
        "SELECT count(*) FROM lake.cellxgene.x x JOIN lake.cellxgene.obs o "
        "ON o.query = x.query AND o.soma_joinid = x.cell_joinid JOIN lake.cellxgene.var v "
        "ON v.organism = 'homo_sapiens' AND v.soma_joinid = x.gene_joinid WHERE x.query = 'lung'"
    )
    assert joined == [(anndata(census, "homo_sapiens", LUNG).X.nnz,)]
    assert lake.query("SELECT DISTINCT census_version FROM lake.cellxgene.summary") == [("2025-11-08",)]
    assert lake.query("SELECT count(*), sum(dataset_total_cell_count) FROM lake.cellxgene.datasets") == [(3, 700)]
    assert lake.query("SELECT DISTINCT disease FROM lake.cellxgene.obs ORDER BY 1") == [
        ("COVID-19 || influenza",),
        ("normal",),
    ]


def test_chunked_and_unchunked_loads_are_identical(tmp_path, census):
    contents = []
    for chunk_cells in (37, 1_000_000):
        lake = Lake(tmp_path / str(chunk_cells))
        lake.load("lung", cellxgene.datasets(block(census, query(chunk_cells=chunk_cells)))["lung"], "cellxgene")
        plan = lake.folder("lung", "cellxgene") / "chunks.json"
        contents.append(
            (
                lake.query("SELECT * FROM lake.cellxgene.obs ORDER BY soma_joinid"),
                lake.query("SELECT * FROM lake.cellxgene.x ORDER BY cell_joinid, gene_joinid"),
                plan.read_text().count('"cells"'),
            )
        )
    (obs, x, chunks), (obs1, x1, chunks1) = contents
    entry = cellxgene.datasets(block(census, query(chunk_cells=37)))["lung"]
    plans = [cellxgene.chunks(cellxgene.Dataset("cellxgene", "lung"), entry, None) for _ in range(2)]
    assert plans[0] == plans[1] and [c["cells"] for c in plans[0]] == [37] * 6 + [15]  # deterministic
    assert (chunks, chunks1) == (7, 1)  # 237 lung cells in chunks of 37, or one chunk
    assert obs == obs1 and x == x1 and len(obs) == 237


def test_a_query_matching_no_cell_is_a_valid_empty_load(lake, census):
    receipts = load_all(lake, census, query("none", obs_value_filter="tissue_general == 'heart'"))
    assert receipts["none"].rows == 0
    assert lake.query("SELECT count(*) FROM lake.cellxgene.obs") == [(0,)]
    assert lake.query("SELECT count(*) FROM lake.cellxgene.x") == [(0,)]
    columns = [r[0] for r in lake.query("DESCRIBE lake.cellxgene.x")]
    assert columns == ["query", "census_version", "cell_joinid", "gene_joinid", "value"]


@pytest.mark.parametrize(
    "bad, cause",
    [
        (
            {"organism": "danio_rerio"},
            "unknown organism 'danio_rerio'; fix: set organism to one of homo_sapiens, mus_musculus",
        ),
        ({"obs_value_filter": "tissue_general == = 'lung'"}, "invalid filter (obs_value_filter"),
        ({"obs_value_filter": "no_such_column == 'lung'"}, "invalid filter"),
        ({"var_value_filter": "feature_name in ['CD3D'"}, "invalid filter"),
        (
            {"obs_columns": ["cell_type", "tissue_ontology"]},
            "unknown obs column 'tissue_ontology'; fix: choose obs_columns among soma_joinid",
        ),
        ({"x_layer": "normalized"}, "unknown X layer 'normalized'; fix: set x_layer to one of raw"),
    ],
)
def test_a_bad_query_is_one_clear_error_naming_it(lake, census, bad, cause):
    entry = cellxgene.datasets(block(census, query("lung", **bad)))["lung"]
    with pytest.raises(DatasetError) as error:
        lake.load("lung", entry, "cellxgene")
    assert str(error.value).startswith("cellxgene.lung: ") and cause in str(error.value)
    assert "; fix: " in str(error.value)
    assert not (lake.root / "lake").exists()  # nothing registered


def test_an_unreachable_census_is_one_clear_error(lake, tmp_path):
    entry = cellxgene.datasets(block(str(tmp_path / "nowhere"), query()))["lung"]
    with pytest.raises(DatasetError, match=r"^cellxgene\.lung: cannot open the census \(.*nowhere\): "):
        lake.load("lung", entry, "cellxgene")


def test_credentials_in_tiledb_config_are_refused(census):
    from omicslake.errors import ConfigError

    with pytest.raises(ConfigError, match="tiledb_config.vfs.s3.aws_secret_access_key: a credential"):
        cellxgene.datasets(block(census, query(), tiledb_config={"vfs.s3.aws_secret_access_key": "x"}))


def test_a_failed_chunk_is_retried_alone(tmp_path, census):
    config = workflow_config(tmp_path, {"cellxgene": {"census_uri": census, "queries": [query(chunk_cells=100)]}})
    blocker = tmp_path / "staging" / "cellxgene" / "lung" / "chunk" / "1" / "parquet"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("not a folder")  # dlt cannot write chunk 1's files
    failed = run_snakemake(tmp_path, config, *NO_RETRIES)  # the blocker stays: a retry would fail the same
    assert failed.returncode != 0 and "Error in rule ingest_cellxgene_chunk" in failed.stderr
    lake = Lake(tmp_path)
    assert lake.query("SELECT count(*) FROM lake.cellxgene.var") == [(765,)]  # the census dataset landed
    assert lake.query("SELECT count(*) FROM duckdb_tables() WHERE table_name IN ('obs', 'x')") == [(0,)]

    blocker.unlink()
    fixed = run_snakemake(tmp_path, config)
    assert fixed.returncode == 0, fixed.stderr[-3000:]
    assert started_jobs(fixed) == [
        ("ingest_cellxgene", "lung"),
        ("ingest_cellxgene_chunk", "lung"),
        ("register", "lung"),
    ]
    assert lake.query("SELECT count(*), count(DISTINCT soma_joinid) FROM lake.cellxgene.obs") == [(237, 237)]


@pytest.fixture
def s3_census(census, monkeypatch):
    """The census in a bucket of a real S3 server (moto) on 127.0.0.1; credentials in the environment."""
    from pathlib import Path

    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "omicslake-test-key-id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    s3 = boto3.client("s3", endpoint_url=f"http://{host}:{port}", region_name="us-west-2")
    s3.create_bucket(Bucket="census", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    for path in Path(census).rglob("*"):
        if path.is_file():
            s3.upload_file(str(path), "census", f"release/soma/{path.relative_to(census)}")
    yield (
        "s3://census/release/soma",
        {
            "vfs.s3.endpoint_override": f"{host}:{port}",
            "vfs.s3.scheme": "http",
            "vfs.s3.use_virtual_addressing": "false",
            "vfs.s3.no_sign_request": "false",  # the census client's default is anonymous
        },
    )
    server.stop()


SECRET = "s3cr3t-omicslake-census-mirror"


def test_a_census_mirror_on_s3_loads_the_same_rows(lake, census, s3_census, tmp_path):
    uri, tiledb_config = s3_census
    load_all(lake, uri, query(), tiledb_config=tiledb_config)
    local = Lake(tmp_path / "local")
    load_all(local, census, query())
    for table in ("obs", "x", "var", "datasets", "summary"):
        sql = f"SELECT * FROM lake.cellxgene.{table} ORDER BY ALL"
        assert lake.query(sql) == local.query(sql), table
    assert lake.query("SELECT DISTINCT url FROM lake.omicslake.upstream") == [(uri,)]
    leaked = [p for p in lake.root.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert leaked == []  # manifests, receipts, stamps, catalog, data


def test_x_files_leave_query_and_census_version_to_their_folder(lake, census):
    """x's two constant columns are hive partitions: the folder holds them, DuckLake serves them."""
    import pyarrow.parquet as pq

    load_all(lake, census, query())
    paths = [p for (p,) in lake.query("SELECT path FROM lake.omicslake.files WHERE table_name = 'cellxgene.x'")]
    assert paths and all(p.startswith("cellxgene/x/query=lung/census_version=2025-11-08/") for p in paths)
    data = Path(lake.data_path)
    assert all(pq.read_schema(data / p).names == ["cell_joinid", "gene_joinid", "value"] for p in paths)
    assert lake.query(
        "SELECT count(*) FROM lake.cellxgene.x WHERE query = 'lung' AND census_version = '2025-11-08'"
    ) == [(58005,)]


def test_tuning_keys_are_no_reason_to_reload_a_query(tmp_path, census):
    from omicslake.probe import probe

    def probe_with(**settings) -> dict:
        entries = cellxgene.datasets(block(census, query(), **settings))
        stamps = {name: str(tmp_path / name / "stamp.json") for name in entries}
        return probe("cellxgene", entries, stamps, tmp_path / "report.json")

    assert probe_with() == {"lung": "new", "census": "new"}
    tuned = probe_with(read_buffer_mb=512, tiledb_config={"vfs.s3.proxy_host": "proxy.example"})
    assert tuned == {"lung": "unchanged", "census": "unchanged"}
    assert probe_with(census_version="2026-05-01")["lung"] == "changed"  # part of what is loaded


def test_a_replan_of_an_unchanged_query_pulls_no_chunk(lake, census):
    """After a probe that failed, the plan runs again: the census is the receipt's, so no chunk."""
    from omicslake.ingest import plan_chunks

    entry = cellxgene.datasets(block(census, query()))["lung"]
    first = lake.load("lung", entry, "cellxgene")
    folder = lake.folder("lung", "cellxgene")
    assert plan_chunks("cellxgene", "lung", entry, folder / "chunks.json") == []
    again = lake.load("lung", entry, "cellxgene")  # plan, no chunk, gather, register
    assert again.status == "unchanged" and again.snapshot_id == first.snapshot_id


@pytest.mark.parametrize(
    "settings, key",
    [
        ({"tiledb_config": {"vfs.azure.storage_account_key": "x"}}, "tiledb_config.vfs.azure.storage_account_key"),
        ({"census_uri": "s3://user:pw@bucket/soma"}, "census_uri"),
    ],
)
def test_credentials_in_the_census_settings_are_refused(census, settings, key):
    from omicslake.errors import ConfigError

    with pytest.raises(ConfigError, match=f"sources.cellxgene.{key}: "):
        cellxgene.datasets(block(census, query(), **settings))


def test_a_data_path_with_key_value_is_refused_for_partitioned_tables(tmp_path, census):
    lake = Lake(tmp_path / "run=1")
    with pytest.raises(DatasetError, match=r"^cellxgene\.lung: lake\.data_path .* holds '='"):
        load_all(lake, census, query())
