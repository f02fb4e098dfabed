"""GEO over a real FTP server (pyftpdlib on 127.0.0.1) and a file:// mirror, into the lake."""

import gzip
import os
import time
from pathlib import Path

import pyarrow as pa
import pytest

from omicslake.errors import ConfigError, DatasetError
from omicslake.sources import geo
from omicslake.sources.geo import layout, parse, soft
from standins import geo_tree as tree
from tests.conftest import probe_report, run_snakemake, started_jobs, workflow_config

FIXTURES = tree.FIXTURES


def cfg(base_url: str, supplementary: str = "list", **lists) -> dict:
    return geo.datasets({"base_url": base_url, "supplementary": supplementary, **lists})


def load(lake, base_url, accession, kind="series", supplementary="list"):
    return lake.load(accession, cfg(base_url, supplementary, **{kind: [accession]})[accession], source="geo")


def matrix_value(path: Path, probe: str, sample: str) -> float | None:
    """The value of (probe, sample) read straight from a series matrix text."""
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    header = lines[lines.index("!series_matrix_table_begin") + 1].replace('"', "").split("\t")
    row = next(line for line in lines if line.startswith(f'"{probe}"')).split("\t")
    cell = row[header.index(sample)]
    return None if cell in ("", "null") else float(cell)


# --- parsing the real fixture files -------------------------------------------------------------


def test_family_soft_entities_and_tables():
    entities = [
        (e.kind, e.id, soft.read_table(e.table).read_all().num_rows if e.table else None)
        for e in soft.read_soft(FIXTURES / "soft_ex_family.txt")
    ]
    assert [k for k, _, _ in entities] == ["PLATFORM", "SAMPLE", "SAMPLE", "SAMPLE", "SERIES"]
    assert [n for _, _, n in entities] == [20, 20, 20, 20, None]


def test_gsm_soft_with_22283_rows():
    for sample in soft.read_soft(FIXTURES / "GSM11805.txt.gz"):  # a table is read before the next entity
        assert sample.first("sample_platform_id") == "GPL96"
        assert len(sample.attrs["sample_description"]) == 7  # repeated lines kept in order
        table = pa.Table.from_batches(list(soft.read_table(sample.table, {"ID_REF": pa.string()})))
        assert table.num_rows == 22283 and table.column_names == ["ID_REF", "VALUE", "ABS_CALL"]


def test_malformed_soft_table_is_an_error():
    with pytest.raises(pa.ArrowInvalid, match="Expected 4 columns, got 2"):
        for entity in soft.read_soft(FIXTURES / "GPL20814_family.soft"):
            if entity.table is not None:
                soft.read_table(entity.table).read_all()


def test_duplicate_column_names_are_made_unique():
    assert soft.unique_names(["ID", "GO:Function", "GO:Function", "GO:Function"]) == [
        "ID",
        "GO:Function",
        "GO:Function_2",
        "GO:Function_3",
    ]


def test_series_matrix_header_quirks(tmp_path):
    path = tree.write_gz(tmp_path / "m.txt.gz", tree.matrix_text("GSE1", "GPL1", ["GSM1", "GSM2", "GSM3"], 5))
    matrix = soft.read_series_matrix(path)
    assert matrix.series["summary"] == [
        "Tumor and normal kidney samples, Affymetrix arrays.",
        "Keywords: disease state analysis",
    ]
    rows, characteristics = parse.sample_rows("GSE1", matrix.samples)
    assert [r["sample_id"] for r in rows] == ["GSM1", "GSM2", "GSM3"]
    keys = {(c["sample_id"], c["key"]) for c in characteristics}
    assert ("GSM1", "age") not in keys and ("GSM2", "age") in keys  # an empty cell is no characteristic
    assert len(characteristics) == 8
    files = parse.supplementary_rows("GSE1", matrix.series, matrix.samples, [])
    assert [(f["level"], f["sample_id"], f["file_name"]) for f in files] == [
        ("series", None, "GSE1_RAW.tar"),
        ("sample", "GSM2", "GSM2.CEL.gz"),  # GSM1's is NONE
        ("sample", "GSM3", "GSM3.CEL.gz"),
    ]
    assert parse.series_row(matrix.series)["sample_ids"] == ["GSM1", "GSM2", "GSM3"]


def test_streaming_a_large_matrix_in_bounded_batches(tmp_path, monkeypatch):
    monkeypatch.setattr(soft, "BLOCK_SIZE", 1 << 16)
    samples = [f"GSM{i}" for i in range(40)]
    path = tree.write_gz(tmp_path / "GSE9_series_matrix.txt.gz", tree.matrix_text("GSE9", "GPL9", samples, 5000))
    items = [getattr(item, "data", item) for item in parse.parse_series("geo.GSE9", "GSE9", [("u", path)], [])]
    tables = [t for t in items if "probe_id" in t.column_names]
    assert len(tables) > 10  # one per 64 KiB block, never the whole matrix
    assert max(t.num_rows for t in tables) < 5000 * 40 / 5
    assert sum(t.num_rows for t in tables) == 5000 * 40


def test_geo_config_checks():
    with pytest.raises(ConfigError, match=r"sources.geo.datasets\[0\]: 'GSE1' is not a GDS accession"):
        geo.datasets({"base_url": "ftp://x/geo", "datasets": ["GSE1"]})
    with pytest.raises(ConfigError, match="GSE1 is listed twice"):
        geo.datasets({"base_url": "ftp://x/geo", "series": ["GSE1", "GSE1"]})
    assert layout.folder_url("ftp://h/geo", "GSE105845", "matrix") == "ftp://h/geo/series/GSE105nnn/GSE105845/matrix/"
    assert layout.folder_url("ftp://h/geo/", "GSE781", "suppl") == "ftp://h/geo/series/GSEnnn/GSE781/suppl/"


# --- into the lake over FTP ---------------------------------------------------------------------


def test_series_on_two_platforms_over_ftp(lake, ftp_server, geo_tree):
    base = ftp_server.url("geo")
    ftp_server.refuse = 1  # 421 on the first login: retried
    load(lake, base, "GSE781")
    assert lake.query("SELECT platform_ids, len(sample_ids) FROM lake.geo.series") == [(["GPL96", "GPL97"], 12)]
    assert lake.query("SELECT platform_id, count(*) FROM lake.geo.samples GROUP BY 1 ORDER BY 1") == [
        ("GPL96", 6),
        ("GPL97", 6),
    ]
    matrix = geo_tree / "series/GSEnnn/GSE781/matrix/GSE781-GPL97_series_matrix.txt.gz"
    for probe, sample in [("1000_at", "GSM11905"), ("1039_at", "GSM11910"), ("1017_at", "GSM11907")]:
        got = lake.query("SELECT value FROM lake.geo.expression WHERE probe_id = ? AND sample_id = ?", [probe, sample])
        assert got == [(matrix_value(matrix, probe, sample),)]
    assert lake.query("SELECT count(*) FROM lake.geo.expression WHERE value IS NULL")[0][0] > 0  # null and empty
    assert lake.query("SELECT count(*), count(DISTINCT sample_id) FROM lake.geo.expression") == [(50 * 6 + 40 * 6, 12)]
    assert lake.query(
        "SELECT key, value FROM lake.geo.sample_characteristics WHERE sample_id = 'GSM11906' ORDER BY key"
    ) == [("age", "41"), ("grade", "3"), ("tissue", "tumor")]
    listed = lake.query("SELECT file_name, size FROM lake.geo.supplementary_files WHERE level = 'series' ORDER BY 1")
    assert listed == [("GSE781_RAW.tar", 10240), ("filelist.txt", len("#Archive/File\tName\n"))]
    cel = lake.query("SELECT count(*) FROM lake.geo.supplementary_files WHERE level = 'sample' AND url LIKE '%.CEL.gz'")
    assert cel == [(10,)]  # 12 samples, the first of each platform says NONE


def test_geo_over_https_lists_folders_from_their_index_pages(lake, geo_tree, http_server):
    """NCBI serves the same tree over HTTPS (clusters often block FTP): folders are listed from
    their `Index of` pages, sizes and dates come from HEAD; a rerun downloads nothing."""
    base = tree.serve_over_https(http_server, geo_tree)
    load(lake, base, "GSE781")
    load(lake, base, "GDS507", "datasets")
    load(lake, base, "GPL97", "platforms")
    assert lake.query("SELECT count(*), count(DISTINCT sample_id) FROM lake.geo.expression") == [(50 * 6 + 40 * 6, 12)]
    listed = lake.query("SELECT file_name, size FROM lake.geo.supplementary_files WHERE level = 'series' ORDER BY 1")
    assert listed == [("GSE781_RAW.tar", 10240), ("filelist.txt", len("#Archive/File\tName\n"))]
    assert lake.query("SELECT count(*) FROM lake.geo.dataset_expression") == [(30 * 6,)]
    assert lake.query("SELECT count(*), count(gene_symbol) FROM lake.geo.platform_probes") == [(42, 40)]
    snapshots = lake.snapshots()
    http_server.requests.clear()
    again = load(lake, base, "GSE781")
    assert again.status == "unchanged" and lake.snapshots() == snapshots
    assert {r["method"] for r in http_server.requests} == {"GET", "HEAD"}
    assert not [r for r in http_server.requests if r["method"] == "GET" and not r["path"].endswith("/")]  # no file
    with pytest.raises(DatasetError, match=r"^geo\.GSE999999: .*HTTP 404.*fix: check that GSE999999 exists"):
        load(lake, base, "GSE999999")


def test_gds_platform_and_sequencing_series_share_the_tables(lake, ftp_server):
    base = ftp_server.url("geo")
    load(lake, base, "GSE781")
    load(lake, base, "GDS507", "datasets")
    load(lake, base, "GPL97", "platforms")
    load(lake, base, "GSE2000")  # RNA-seq: empty matrix table, metadata still loads
    load(lake, base, "GSE105845")  # only a family SOFT (the real fixture)
    assert lake.query("SELECT count(*) FROM lake.geo.expression WHERE series_id = 'GSE781'") == [(540,)]
    assert lake.query("SELECT dataset_id, series_id, count(*) FROM lake.geo.dataset_expression GROUP BY ALL") == [
        ("GDS507", "GSE781", 180)
    ]
    assert lake.query(
        "SELECT identifier, value FROM lake.geo.dataset_expression "
        "WHERE probe_id = '1001_at' AND sample_id = 'GSM11906'"
    ) == [("GENE1", 11.5)]
    one_value_each = lake.query("""SELECT count(*) FROM (SELECT series_id, platform_id, sample_id, probe_id
                                   FROM lake.geo.expression GROUP BY ALL HAVING count(*) > 1)""")
    assert one_value_each == [(0,)]  # the GDS of the series did not double its values
    assert lake.query("SELECT subset_id, count(*) FROM lake.geo.dataset_subsets GROUP BY 1 ORDER BY 1") == [
        ("GDS507_1", 3),
        ("GDS507_2", 3),
    ]
    probes = lake.query(
        "SELECT gene_title, go_function, go_function_2 FROM lake.geo.platform_probes WHERE probe_id = '1001_at'"
    )  # the real annot layout: Latin-1 read, each GO column twice (terms, then ids)
    assert probes == [("prot\u00e9ine kinase", "ATP binding///protein binding", "GO:0005524///GO:0005515")]
    joined = lake.query("""SELECT count(*) FROM lake.geo.expression e JOIN lake.geo.platform_probes p
                           USING (platform_id, probe_id)""")
    assert joined == [(240,)]  # the GPL97 half of GSE781 joins its annotation
    assert lake.query("SELECT count(*) FROM lake.geo.samples WHERE series_id = 'GSE2000'") == [(2,)]
    assert lake.query("SELECT title, sample_ids FROM lake.geo.series WHERE series_id = 'GSE105845'") == [
        ("microRNA-seq from forebrain (ENCSR715QTV)", ["GSM2828511", "GSM2828512"])
    ]


def test_a_gds_of_2003_without_table_markers_loads_its_values_and_subsets(lake, tmp_path):
    subsets = {"5 minute": ["GSM547"], "20 minute": ["GSM545", "GSM542"], "0 minute": ["GSM549"]}
    tree.write_gz(tmp_path / "geo/datasets/GDSnnn/GDS100/soft/GDS100.soft.gz",
                  tree.legacy_gds_text("GDS100", "GSE9", "GPL18", subsets, 12))  # fmt: skip
    load(lake, f"file://{tmp_path / 'geo'}", "GDS100", "datasets")
    info = "SELECT dataset_id, series_id, platform_id, sample_count, sample_organism, update_date::VARCHAR"
    assert lake.query(f"{info} FROM lake.geo.datasets") == [
        ("GDS100", "GSE9", "GPL18", 4, "Escherichia coli", "2003-04-06")
    ]
    assert lake.query("SELECT count(*), count(value) FROM lake.geo.dataset_expression") == [(48, 42)]  # 6 nulls
    value = "SELECT value FROM lake.geo.dataset_expression WHERE probe_id = '2' AND sample_id = 'GSM545'"
    assert lake.query(value) == [(-1.21,)]  # its row `2  2  -1.38  -1.21  ...`: the second sample column
    assert lake.query("SELECT subset_id, count(*) FROM lake.geo.dataset_subsets GROUP BY 1 ORDER BY 1") == [
        ("GDS100_1", 1),
        ("GDS100_2", 2),
        ("GDS100_3", 1),
    ]


def test_a_gds_without_any_table_is_an_error_not_an_empty_load(lake, tmp_path):
    text = tree.legacy_gds_text("GDS100", "GSE9", "GPL18", {"5 minute": ["GSM547"]}, 3)
    tree.write_gz(tmp_path / "geo/datasets/GDSnnn/GDS100/soft/GDS100.soft.gz", text.split("^dataset = GDS100\n#")[0])
    with pytest.raises(
        DatasetError, match=r"^geo\.GDS100: GDS100\.soft\.gz: GEO file in a layout not supported: no data"
    ):
        load(lake, f"file://{tmp_path / 'geo'}", "GDS100", "datasets")


def test_a_sage_series_loads_its_tag_counts(lake, tmp_path):
    tags = {"GSM38112": {"AAAAAAAAAA": 3, "CATTTGTTCA": 120}, "GSM38113": {"AAAAAAAAAA": 1, "GGGGGGGGGG": 7}}
    tree.write_gz(tmp_path / "geo/series/GSE2nnn/GSE2122/soft/GSE2122_family.soft.gz",
                  tree.sage_family_text("GSE2122", "GPL11", tags))  # fmt: skip
    load(lake, f"file://{tmp_path / 'geo'}", "GSE2122")
    assert lake.query("SELECT sample_id, probe_id, value FROM lake.geo.expression ORDER BY 1, 2") == [
        ("GSM38112", "AAAAAAAAAA", 3.0),
        ("GSM38112", "CATTTGTTCA", 120.0),
        ("GSM38113", "AAAAAAAAAA", 1.0),
        ("GSM38113", "GGGGGGGGGG", 7.0),
    ]
    assert lake.query("SELECT count(*) FROM lake.geo.samples") == [(2,)]


def test_a_sample_table_of_another_layout_is_named_unsupported_not_malformed(lake, tmp_path):
    text = tree.sage_family_text("GSE2122", "GPL11", {"GSM38112": {"AAAAAAAAAA": 3}})
    text = text.replace("#COUNT = ", "#HITS = ").replace("TAG\tCOUNT\tTPM", "TAG\tHITS\tTPM")
    tree.write_gz(tmp_path / "geo/series/GSE2nnn/GSE2122/soft/GSE2122_family.soft.gz", text)
    with pytest.raises(DatasetError, match=r"layout not supported: sample GSM38112's table has columns TAG, HITS") as e:
        load(lake, f"file://{tmp_path / 'geo'}", "GSE2122")
    assert "malformed" not in str(e.value)


def test_platform_annotation_as_ncbi_writes_it(lake, geo_tree):
    load(lake, f"file://{geo_tree}", "GPL97", "platforms")
    columns = [r[0] for r in lake.query("SELECT column_name FROM (DESCRIBE lake.geo.platform_probes)")]
    assert columns == [
        "platform_id", "probe_id", "gene_title", "gene_symbol", "gene_id", "uni_gene_title", "uni_gene_symbol",
        "uni_gene_id", "nucleotide_title", "gi", "gen_bank_accession", "platform_cloneid", "platform_orf",
        "platform_spotid", "chromosome_location", "chromosome_annotation", "go_function", "go_process",
        "go_component", "go_function_2", "go_process_2", "go_component_2",
    ]  # fmt: skip
    assert lake.query("SELECT count(*), count(gene_symbol) FROM lake.geo.platform_probes") == [(42, 40)]
    control = lake.query("SELECT * FROM lake.geo.platform_probes WHERE probe_id = 'AFFX-BioB-3_at'")
    assert control == [("GPL97", "AFFX-BioB-3_at", *[None] * 20)]  # empty cells are NULL
    assert lake.query("SELECT gene_id FROM lake.geo.platform_probes WHERE probe_id = '1005_at'") == [("6///90006",)]


def test_every_geo_table_exists_after_the_first_load(lake, geo_tree):
    load(lake, f"file://{geo_tree}", "GPL97", "platforms")
    tables = {r[0] for r in lake.query("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'geo'")}
    assert tables == {
        "series", "samples", "sample_characteristics", "expression", "supplementary_files",
        "supplementary_values", "datasets", "dataset_subsets", "dataset_expression", "platform_probes",
    }  # fmt: skip
    assert lake.query("SELECT count(*) FROM lake.geo.expression WHERE series_id = 'GSE781'") == [(0,)]
    registered = lake.query("SELECT DISTINCT table_name FROM lake.omicslake.files")
    assert registered == [("geo.platform_probes",)]  # empty tables are declared, not given files


def test_supplementary_files_come_from_the_headers_when_suppl_cannot_be_listed(lake, geo_tree):
    import shutil

    shutil.rmtree(geo_tree / "series/GSEnnn/GSE781/suppl")
    load(lake, f"file://{geo_tree}", "GSE781")
    files = lake.query("SELECT level, count(*), count(size) FROM lake.geo.supplementary_files GROUP BY 1 ORDER BY 1")
    assert files == [("sample", 10, 0), ("series", 1, 0)]
    assert lake.query("SELECT url FROM lake.geo.supplementary_files WHERE level = 'series'") == [
        ("ftp://ftp.ncbi.nlm.nih.gov/geo/series/GSEnnn/GSE781/suppl/GSE781_RAW.tar",)
    ]


def test_family_soft_series_records_its_supplementary_file(lake, geo_tree):
    load(lake, f"file://{geo_tree}", "GSE105845")  # the real family SOFT
    assert lake.query("SELECT level, file_name FROM lake.geo.supplementary_files WHERE series_id = 'GSE105845'") == [
        ("series", "GSE105845_RAW.tar")
    ]


def test_rerun_fetches_nothing_and_adds_nothing(lake, ftp_server):
    base = ftp_server.url("geo")
    load(lake, base, "GSE781")
    before = lake.snapshots()
    ftp_server.commands.clear()
    assert load(lake, base, "GSE781").status == "unchanged"
    assert lake.snapshots() == before
    assert not [c for c in ftp_server.commands if c[0] == "RETR"]  # listing only


def test_changed_series_replaces_its_rows_in_one_snapshot(lake, ftp_server, geo_tree):
    base = ftp_server.url("geo")
    first = load(lake, base, "GSE781")
    load(lake, base, "GDS507", "datasets")
    before = lake.snapshots()
    matrix = geo_tree / "series/GSEnnn/GSE781/matrix/GSE781-GPL96_series_matrix.txt.gz"
    tree.write_gz(matrix, tree.matrix_text("GSE781", "GPL96", tree.GSE781_GPL96, 10, seed=9))
    os.utime(matrix, (1, 1))
    load(lake, base, "GSE781")
    assert lake.snapshots() == before + 1
    assert lake.query("SELECT count(*) FROM lake.geo.expression") == [(10 * 6 + 40 * 6,)]
    assert lake.query("SELECT count(*) FROM lake.geo.dataset_expression") == [(180,)]
    old = lake.query(
        f"SELECT count(*) FROM lake.geo.expression AT (VERSION => {first.snapshot_id}) WHERE series_id = 'GSE781'"
    )
    assert old == [(540,)]


def test_a_new_tables_version_reloads_what_an_older_omicslake_loaded(lake, ftp_server, monkeypatch):
    import dataclasses

    from omicslake import sources

    base = ftp_server.url("geo")
    load(lake, base, "GSE781")
    before = lake.snapshots()
    spec = sources.SOURCES["geo"]
    monkeypatch.setitem(sources.SOURCES, "geo", dataclasses.replace(spec, tables_version=spec.tables_version + 1))
    assert load(lake, base, "GSE781").status == "registered"  # same upstream files, new table shapes
    assert lake.snapshots() == before + 1
    assert lake.query("SELECT count(*) FROM lake.geo.expression") == [(540,)]  # replaced, not doubled


def test_broken_off_transfer_resumes_with_rest(lake, ftp_server):
    ftp_server.truncate["GSE781-GPL96_series_matrix.txt.gz"] = 700
    load(lake, ftp_server.url("geo"), "GSE781")
    assert ("REST", "700") in ftp_server.commands
    assert lake.query("SELECT count(*) FROM lake.geo.samples") == [(12,)]


def test_a_passing_4xx_on_a_listing_is_retried_not_taken_for_an_empty_folder(lake, ftp_server):
    ftp_server.fail["MLSD"] = 1
    load(lake, ftp_server.url("geo"), "GSE781")
    assert lake.query("SELECT count(*) FROM lake.geo.expression") == [(540,)]
    assert [c for c in ftp_server.commands if c[0] == "MLSD"][:2] == [("MLSD", "/geo/series/GSEnnn/GSE781/matrix/")] * 2


def test_a_connection_the_server_closed_while_idle_is_replaced_without_a_retry(lake, geo_tree):
    from omicslake.download import DownloadSettings, listing
    from standins.servers import FTPServer

    server = FTPServer(geo_tree.parent, idle_timeout=0.5)
    try:
        no_retries = DownloadSettings(retries=0, backoff_seconds=0, timeout_seconds=5)
        folder = server.url("geo/series/GSEnnn/GSE781/matrix/")
        assert len(listing("geo.GSE781", folder, no_retries)) == 2
        time.sleep(1.5)  # the server hangs up on the kept connection
        assert len(listing("geo.GSE781", folder, no_retries)) == 2
        assert [c[0] for c in server.commands].count("USER") == 2
    finally:
        server.stop()


def test_a_server_without_mlsd(lake, ftp_server):
    ftp_server.mlsd = False
    load(lake, ftp_server.url("geo"), "GSE781")
    before = lake.snapshots()
    assert load(lake, ftp_server.url("geo"), "GSE781").status == "unchanged"  # MDTM dates are stable
    assert lake.snapshots() == before
    assert ("MDTM", "/geo/series/GSEnnn/GSE781/matrix/GSE781-GPL96_series_matrix.txt.gz") in ftp_server.commands


def test_unknown_accession_names_it_and_the_url(lake, ftp_server):
    with pytest.raises(
        DatasetError,
        match=r"^geo\.GSE999999: ftp://127\.0\.0\.1:\d+/geo/series/GSE999nnn/GSE999999/"
        r"soft/: not found.*; fix: check that GSE999999 exists",
    ):
        load(lake, ftp_server.url("geo"), "GSE999999")
    with pytest.raises(DatasetError, match=r"geo\.GPL5: .*/platforms/GPLnnn/GPL5/annot/: not found"):
        load(lake, ftp_server.url("geo"), "GPL5", "platforms")


def test_truncated_matrix_is_a_clear_error_and_nothing_is_registered(lake, ftp_server, geo_tree):
    matrix = geo_tree / "series/GSEnnn/GSE781/matrix/GSE781-GPL97_series_matrix.txt.gz"
    matrix.write_bytes(matrix.read_bytes()[:-20])
    with pytest.raises(DatasetError, match=r"geo\.GSE781: GSE781-GPL97_series_matrix\.txt\.gz: cannot parse GEO file"):
        load(lake, ftp_server.url("geo"), "GSE781")
    assert not (lake.folder("GSE781", "geo") / "manifest.json").exists()


def test_supplementary_tables_are_loaded_long(lake, ftp_server):
    load(lake, ftp_server.url("geo"), "GSE2000", supplementary="load")
    assert lake.query("SELECT count(*), count(DISTINCT feature_id) FROM lake.geo.supplementary_values") == [(50, 25)]
    assert lake.query("SELECT DISTINCT column_name FROM lake.geo.supplementary_values ORDER BY 1") == [
        ("GSM20001",),
        ("GSM20002",),
    ]  # the text column `symbol` is not a value
    assert lake.query(
        "SELECT value FROM lake.geo.supplementary_values WHERE feature_id = 'ENSG00000000007' "
        "AND column_name = 'GSM20002'"
    ) == [(35.0,)]
    assert lake.query(
        "SELECT count(*) FROM lake.geo.supplementary_files WHERE file_name = 'GSE2000_counts.tsv.gz'"
    ) == [(1,)]


def test_file_mirror(lake, geo_tree):
    load(lake, f"file://{geo_tree}", "GSE781")
    load(lake, f"file://{geo_tree}", "GPL97", "platforms")
    assert lake.query("SELECT count(*) FROM lake.geo.expression") == [(540,)]
    assert not list(lake.staging.rglob("download/*"))  # a local mirror is read in place


@pytest.mark.slow
def test_workflow_with_series_gds_and_platform(tmp_path, ftp_server, geo_tree):
    config = workflow_config(
        tmp_path,
        {
            "geo": {
                "base_url": ftp_server.url("geo"),
                "series": ["GSE781", "GSE2000"],
                "datasets": ["GDS507"],
                "platforms": ["GPL97"],
            }
        },
    )
    result = run_snakemake(tmp_path, config)
    assert result.returncode == 0, result.stderr[-3000:]
    from tests.conftest import Lake

    lake = Lake(tmp_path)
    matrix = geo_tree / "series/GSEnnn/GSE781/matrix/GSE781-GPL96_series_matrix.txt.gz"
    got = lake.query("SELECT value FROM lake.geo.expression WHERE probe_id = '1003_at' AND sample_id = 'GSM11807'")
    assert got == [(matrix_value(matrix, "1003_at", "GSM11807"),)]
    snapshots = lake.snapshots()
    ftp_server.commands.clear()
    rerun = run_snakemake(tmp_path, config)
    assert rerun.returncode == 0
    assert lake.snapshots() == snapshots
    assert "rule ingest_geo" not in rerun.stderr and "rule register" not in rerun.stderr
    assert set(probe_report(tmp_path, "geo").values()) == {"unchanged"}
    assert not [c for c in ftp_server.commands if c[0] == "RETR"]  # folder listings only

    os.utime(matrix, (1e9, 1e9))  # a new date: GEO touched the series
    changed = run_snakemake(tmp_path, config)
    assert changed.returncode == 0
    assert started_jobs(changed) == [("ingest_geo", "GSE781"), ("register", "GSE781")]  # that dataset only
    assert lake.snapshots() == snapshots  # same values: the register job found the content unchanged


@pytest.mark.parametrize("offset", range(-20, 4))
def test_table_end_marker_across_a_buffer_boundary(offset):
    import io

    size = 1 << 12
    row = b"p1\t1.5\n"
    rows = row * ((size + offset) // len(row))  # the marker starts a few bytes before or after the buffer's end
    text = b"ID_REF\tVALUE\n" + rows + b"!sample_table_end\n^SAMPLE = next\n"
    reader = io.BufferedReader(io.BytesIO(text), size)
    table = pa.Table.from_batches(list(soft.read_table(soft.TableStream(reader))))
    assert table.num_rows == len(rows) // len(row)
    assert reader.read() == b"^SAMPLE = next\n"


def test_table_without_header_does_not_swallow_the_next_entity(tmp_path):
    path = tmp_path / "f.soft"
    path.write_text("^SAMPLE = A\n!sample_table_begin\n!sample_table_end\n^SAMPLE = B\n!Sample_title = b\n")
    seen = []
    for entity in soft.read_soft(path):
        seen.append(entity.id)
        if entity.table is not None:
            assert list(soft.read_table(entity.table)) == []
    assert seen == ["A", "B"]
