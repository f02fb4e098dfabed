"""Kill at every step: the job SIGKILLs itself at each fault point (omicslake.faults), then a plain
rerun of the workflow must end with the lake an uninterrupted run builds: same rows, no duplicate,
no orphan or missing file (`omicslake verify`), one load."""

import gzip
import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from omicslake.faults import POINTS
from omicslake.verify import verify
from tests.conftest import NO_RETRIES, Lake, run_snakemake, workflow_config

ROWS = "".join(f"{i}\tGENE{i}\tchr{i % 22 + 1}\t{i * 0.5}\n" for i in range(5000))
GENES = gzip.compress(("gene_id\tsymbol\tchrom\tscore\n" + ROWS).encode())


def content(lake: Lake) -> dict:
    """Rows and a content hash per data table (provenance has load ids and times, so it is
    compared by its shape: one load per dataset, its files all present)."""
    tables = lake.query(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = 'lake' "
        "AND schema_name <> 'omicslake' ORDER BY ALL"
    )
    out = {}
    for schema, table in tables:
        out[f"{schema}.{table}"] = lake.query(
            f"SELECT count(*), count(DISTINCT t), md5(string_agg(t::VARCHAR, '|' ORDER BY t::VARCHAR)) "
            f"FROM lake.{schema}.{table} t"
        )[0]
    out["loads"] = lake.query("SELECT dataset, count(*) FROM lake.omicslake.loads GROUP BY ALL ORDER BY ALL")
    return out


@pytest.fixture(params=["duckdb", "postgres"])
def catalog(request):
    """A function giving each scenario's workdir its lake's catalog: a DuckDB file in it, or a fresh
    PostgreSQL database (the password in PGPASSWORD, as a user sets it)."""
    if request.param == "duckdb":
        yield lambda workdir: str(workdir / "lake" / "omicslake.ducklake")
        return
    postgres = request.getfixturevalue("postgres")
    request.getfixturevalue("monkeypatch").setenv("PGPASSWORD", postgres.PASSWORD)
    yield postgres.new_catalog


@pytest.mark.slow
def test_a_kill_at_every_step_recovers_with_identical_content(tmp_path_factory, http_server, catalog, capsys):
    http_server.add("/genes.tsv.gz", GENES)
    sources = {"http": [{"name": "genes", "url": http_server.url("/genes.tsv.gz"), "format": "tsv"}]}

    def build(name: str, *args: str, kill: str | None = None):
        workdir = tmp_path_factory.mktemp(name)
        config = workflow_config(workdir, sources)
        config["lake"]["catalog"] = catalog(workdir)
        env = {**os.environ, **({"OMICSLAKE_KILL_AT": kill} if kill else {})}
        first = run_snakemake(workdir, config, *args, env=env)
        return workdir, config, first

    def uninterrupted():
        workdir, config, clean = build("reference")
        assert clean.returncode == 0, clean.stderr[-3000:]
        return content(lake_of(workdir, config))

    def killed_then_rerun(point: str):
        # The killed run makes one attempt (NO_RETRIES): the ingest rules' `retries: 2` would only repeat
        # the same kill. The rerun is the plain workflow, retries included.
        workdir, config, killed = build(f"kill-{point}", *NO_RETRIES, kill=point)
        rerun = run_snakemake(workdir, config)
        lake = lake_of(workdir, config)
        found = content(lake) if rerun.returncode == 0 else None
        return point, killed, rerun, found, verify(lake.catalog, lake.data_path)

    # Each scenario in its own workdir and lake, the reference among them: mostly process start-up.
    with ThreadPoolExecutor(3) as pool:
        reference_run = pool.submit(uninterrupted)
        outcomes = list(pool.map(killed_then_rerun, POINTS))
        reference = reference_run.result()
    assert reference["http.genes"][0] == 5000 and reference["loads"] == [("http.genes", 1)]
    table = [
        (p, "killed" if k.returncode else "not reached", r.returncode, f == reference, v.ok)
        for p, k, r, f, v in outcomes
    ]
    with capsys.disabled():  # in every test log, passed or not
        print("\nkill point | first run | rerun exit | same content | verify")
        for row in table:
            print(" | ".join(str(cell) for cell in row))
    for point, killed, rerun, found, report in outcomes:
        assert killed.returncode != 0, f"{point}: the kill point was never reached"
        assert rerun.returncode == 0, f"{point}: {rerun.stderr[-3000:]}"
        assert found == reference, f"{point}: {found} != {reference}"
        assert report.ok, f"{point}: {report}"


def lake_of(workdir, config) -> Lake:
    lake = Lake(workdir)
    lake.catalog = config["lake"]["catalog"]
    return lake


@pytest.mark.slow
@pytest.mark.parametrize("point", ["rename", "commit", "receipt"])
def test_a_kill_between_two_loads_of_the_registrar_loses_neither(tmp_path, http_server, catalog, point):
    """The run's one registrar process dies inside its second load: the first load stays whole, the
    second is that dataset's failure, the next register job starts a new registrar; a plain rerun
    completes the lake."""
    sources = {"http": []}
    for name in ("a", "b", "c"):
        http_server.add(f"/{name}.tsv.gz", GENES)
        sources["http"].append({"name": name, "url": http_server.url(f"/{name}.tsv.gz"), "format": "tsv"})
    config = workflow_config(tmp_path, sources)
    config["lake"]["catalog"] = catalog(tmp_path)
    # one ingest at a time (one core), so the three loads reach the registrar one after another
    killed = run_snakemake(
        tmp_path, config, *NO_RETRIES, "--cores", "1", env={**os.environ, "OMICSLAKE_KILL_AT": f"{point}#2"}
    )
    assert killed.returncode != 0
    assert "the registration process died" in killed.stderr, killed.stderr[-3000:]
    lake = lake_of(tmp_path, config)
    landed = lake.query("SELECT dataset FROM lake.omicslake.loads ORDER BY ALL")
    assert len(landed) == (3 if point == "receipt" else 2)  # a kill after COMMIT keeps its load: no receipt only
    rerun = run_snakemake(tmp_path, config)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert lake.query("SELECT dataset, count(*) FROM lake.omicslake.loads GROUP BY ALL ORDER BY ALL") == [
        ("http.a", 1), ("http.b", 1), ("http.c", 1),
    ]  # fmt: skip
    for name in ("a", "b", "c"):
        assert lake.query(f"SELECT count(*), count(DISTINCT gene_id) FROM lake.http.{name}") == [(5000, 5000)]
    assert verify(lake.catalog, lake.data_path).ok


@pytest.mark.slow
def test_concurrent_runs_on_one_lake(tmp_path, http_server):
    """The same config twice at once: Snakemake's lock stops one with a clear message and the lake
    ends as after one run. Two configs with different datasets sharing one lake: both land. A
    reader queries throughout."""
    import subprocess
    import threading

    import yaml

    from tests.conftest import REPO

    http_server.add("/genes.tsv.gz", GENES)
    http_server.add("/more.tsv.gz", GENES)
    lake = Lake(tmp_path / "shared")

    def start(workdir, names):
        workdir.mkdir(parents=True, exist_ok=True)
        config = workflow_config(
            workdir, {"http": [{"name": n, "url": http_server.url(f"/{n}.tsv.gz")} for n in names]}
        )
        config["lake"] = {"catalog": lake.catalog, "data_path": lake.data_path}
        (workdir / "config.yaml").write_text(yaml.safe_dump(config))
        command = [str(REPO / ".venv" / "bin" / "snakemake"), "--snakefile", str(REPO / "Snakefile"), "--directory",
                   str(workdir), "--configfile", str(workdir / "config.yaml"), "--cores", "1"]  # fmt: skip
        return subprocess.Popen(
            command, cwd=workdir, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}
        )

    reads, stop = [], threading.Event()

    def reader():
        while not stop.is_set():
            try:
                reads.append(lake.query("SELECT count(*) FROM lake.omicslake.loads")[0][0])
            except Exception as e:  # before the first registration there is no lake yet
                reads.append(type(e).__name__)
            stop.wait(0.2)

    watcher = threading.Thread(target=reader)
    watcher.start()
    try:
        same = [start(tmp_path / "a", ["genes"]), start(tmp_path / "a", ["genes"])]
        other = start(tmp_path / "b", ["more"])
        results = [(p.wait(300), p.stderr.read()) for p in [*same, other]]
    finally:
        stop.set()
        watcher.join()
    codes = sorted(code for code, _ in results[:2])
    assert codes[0] == 0 and (codes[1] == 0 or any("lock" in err.lower() for _, err in results[:2])), results
    assert results[2][0] == 0, results[2][1][-3000:]
    assert lake.query("SELECT dataset, count(*) FROM lake.omicslake.loads GROUP BY ALL ORDER BY ALL") == [
        ("http.genes", 1),
        ("http.more", 1),
    ]
    assert lake.query("SELECT count(*), count(DISTINCT gene_id) FROM lake.http.genes") == [(5000, 5000)]
    assert verify(lake.catalog, lake.data_path).ok
    assert any(isinstance(r, int) for r in reads)  # the reader got answers while the runs went on


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs (root only: where it cannot be mounted, docs/operations/verify-and-backup.md gives the
    manual procedure)."""
    import subprocess

    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)]).returncode:
        pytest.skip("cannot mount a tmpfs here: see docs/operations/verify-and-backup.md, 'A full disk'")
    yield mount
    subprocess.run(["umount", "-l", str(mount)])


@pytest.mark.slow
def test_a_full_disk_fails_the_dataset_cleanly_and_the_next_run_recovers(tmp_path, http_server, small_disk):
    import subprocess

    rows = "".join(f"{i}\tGENE{i}\tchr{i % 22 + 1}\t{i * 0.37:.3f}\n" for i in range(60_000))
    http_server.add("/big.tsv.gz", gzip.compress(("gene_id\tsymbol\tchrom\tscore\n" + rows).encode(), 1))
    config = workflow_config(tmp_path, {"http": [{"name": "big", "url": http_server.url("/big.tsv.gz")}]})
    config["staging"] = str(small_disk / "staging")
    config["lake"] = {
        "catalog": str(small_disk / "lake" / "omicslake.ducklake"),
        "data_path": str(small_disk / "lake" / "data"),
    }
    full = run_snakemake(tmp_path, config)
    assert full.returncode != 0
    logs = "".join(p.read_text() for p in (tmp_path / "logs").rglob("*.log"))
    assert "http.big" in logs and "No space left on device" in logs, full.stderr[-4000:]
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)  # space freed
    again = run_snakemake(tmp_path, config)
    assert again.returncode == 0, again.stderr[-3000:]
    lake = Lake(tmp_path)
    lake.catalog, lake.data_path = config["lake"]["catalog"], config["lake"]["data_path"] + "/"
    assert lake.query("SELECT count(*), count(DISTINCT gene_id) FROM lake.http.big") == [(60_000, 60_000)]
    assert verify(lake.catalog, lake.data_path).ok
