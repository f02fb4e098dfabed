"""Access to the DuckLake catalog: offline extension loading, attach, one writer at a time; and
every query of DuckLake's own tables (`{META}.ducklake_*`, `ducklake_list_files`, `snapshots()`,
`current_snapshot()`, `set_option`, a copied catalog's tables). Omicslake's provenance tables
(`lake.omicslake.*`) are `omicslake.provenance`'s."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import importlib
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb

from omicslake.errors import S3_CREDENTIALS, OmicslakeError, first_line

ALIAS = "lake"
META = f"__ducklake_metadata_{ALIAS}"  # the catalog's own tables, as DuckLake attaches them


class NoLake(OmicslakeError):
    """There is no lake at the catalog yet (read-only: nothing to create it)."""


def extension_file(name: str) -> Path:
    """The DuckDB extension shipped in the pinned `duckdb-extension-<name>` package."""
    pkg = importlib.import_module(f"duckdb_extension_{name}")
    version = f"v{duckdb.__version__}"
    path = Path(pkg.__file__).parent / "extensions" / version / f"{name}.duckdb_extension"
    if not path.exists():
        raise RuntimeError(f"{path} missing: install duckdb-extension-{name}=={duckdb.__version__}")
    return path


def loadable(name: str) -> Path:
    """The extension file under the name DuckDB expects: it derives the entry point from the file
    name, and the postgres package ships `postgres.duckdb_extension` of extension `postgres_scanner`."""
    path = extension_file(name)
    if name != "postgres":
        return path
    mine = Path(tempfile.gettempdir(), f"omicslake-{os.getuid()}")  # in /tmp: home may be read-only on nodes
    mine.mkdir(mode=0o700, exist_ok=True)
    if mine.stat().st_uid != os.getuid():
        raise OmicslakeError(f"{mine} belongs to another user", fix=f"remove {mine} (or run as its owner)")
    mine.chmod(0o700)  # nobody else may swap the link
    link = mine / duckdb.__version__ / "postgres_scanner.duckdb_extension"
    if not link.is_symlink() or os.readlink(link) != str(path):
        link.parent.mkdir(exist_ok=True)
        tmp = link.with_name(f"{link.name}.{os.getpid()}")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(path)
        tmp.replace(link)  # atomic: concurrent jobs never see half a link
    return link


def connect(*extensions: str) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with extensions loaded from package files, never downloaded."""
    con = duckdb.connect(config={"autoinstall_known_extensions": False})
    for name in ("ducklake", *extensions):
        con.load_extension(str(loadable(name)))  # straight from the file: nothing written to ~/.duckdb
    return con


def attach_sql(catalog: str, data_path: str, alias: str = ALIAS, read_only: bool = False) -> str:
    """The ATTACH statement for the lake; DATA_PATH always wins, so a moved lake still reads."""
    options = [f"DATA_PATH '{quote(data_path)}'", "OVERRIDE_DATA_PATH true"]
    if read_only:
        options.append("READ_ONLY")
    return f"ATTACH 'ducklake:{quote(catalog)}' AS {alias} ({', '.join(options)})"


def setup_sql(catalog: str, data_path: str, s3: list[dict]) -> list[str]:
    """The statements another DuckDB client runs to read the lake (`omicslake attach`): extensions,
    a secret per S3 location (credentials from the client's own chain), the read-only ATTACH, and
    the lake as the default catalog."""
    catalog, data_path = normalise(catalog, data_path)
    loads = ["ducklake"] + (["postgres"] if catalog.startswith("postgres:") else [])
    loads += ["httpfs"] if s3 or is_url(data_path) else []
    loads += ["aws"] if any(not bucket.get("anonymous") for bucket in s3) else []  # its credential_chain
    secrets = [s3_secret(f"omicslake_s3_{i}", bucket, chain=True) for i, bucket in enumerate(s3)]
    extensions = [f"{verb} {name}" for name in loads for verb in ("INSTALL", "LOAD")]
    return extensions + secrets + [attach_sql(catalog, data_path, read_only=True), f"USE {ALIAS}"]


def file_size(con: duckdb.DuckDBPyConnection, file: str) -> int | None:
    """A file's or an object's size (read_blob reads no content for it); None when it is not there."""
    if "://" not in file:
        return os.path.getsize(file) if os.path.isfile(file) else None
    try:
        return con.execute("SELECT size FROM read_blob(?)", [file]).fetchone()[0]
    except duckdb.Error as e:
        if "404" in str(e) or "not found" in str(e).lower() or "no files found" in str(e).lower():
            return None
        raise


def quote(text: str) -> str:
    """`text` inside a single-quoted SQL string."""
    return text.replace("'", "''")


def is_file_catalog(catalog: str) -> bool:
    return not catalog.startswith(("postgres:", "sqlite:"))


def normalise(catalog: str, data_path: str) -> tuple[str, str]:
    """Absolute catalog path (a DuckDB file) and data path (local, or a URL), with a trailing slash."""
    data = data_path.rstrip("/") + "/" if is_url(data_path) else str(Path(data_path).expanduser().resolve()) + "/"
    return (str(Path(catalog).expanduser().resolve()) if is_file_catalog(catalog) else catalog), data


def s3_secret(name: str, bucket: dict, chain: bool = False) -> str:
    """A temporary DuckDB secret for one S3 location (`omicslake.sources.s3_locations`): its
    endpoint and region from the config, its key from where boto looks (never stored). `chain`:
    let DuckDB's credential chain find the key instead (printed SQL holds no key)."""
    from urllib.parse import urlparse

    options = ["TYPE s3", f"SCOPE '{quote(bucket['scope'])}'"]
    if endpoint := bucket.get("endpoint_url"):
        parsed = urlparse(endpoint)
        options += [f"ENDPOINT '{quote(parsed.netloc)}'", f"USE_SSL {str(parsed.scheme == 'https').lower()}"]
    style = bucket.get("url_style") or ("path" if endpoint else "vhost")
    options.append(f"URL_STYLE '{style}'")
    if bucket.get("region"):
        options.append(f"REGION '{quote(bucket['region'])}'")
    if chain and not bucket.get("anonymous"):
        options.append("PROVIDER credential_chain")
    elif not bucket.get("anonymous"):
        import botocore.session

        try:
            credentials = botocore.session.Session().get_credentials()
        except Exception as e:  # a missing AWS_PROFILE, an expired SSO login, ...
            raise OmicslakeError(
                f"cannot read AWS credentials for {bucket['scope']}: {first_line(e)}", fix=S3_CREDENTIALS
            ) from None
        if credentials is not None:
            frozen = credentials.get_frozen_credentials()
            options += [f"KEY_ID '{quote(frozen.access_key)}'", f"SECRET '{quote(frozen.secret_key)}'"]
            if frozen.token:
                options.append(f"SESSION_TOKEN '{quote(frozen.token)}'")
    return f"CREATE OR REPLACE TEMPORARY SECRET {name} ({', '.join(options)})"


@contextlib.contextmanager
def open_lake(
    catalog: str, data_path: str, read_only: bool = False, wait_seconds: float = 600, s3: list[dict] | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Attach the lake as `lake`, able to read the S3 locations `s3` (a secret for each).

    A DuckDB-file catalog admits one process at a time (a read-write attach blocks even readers).
    Omicslake's own processes queue on a lock file beside it (writers exclusive, readers shared);
    anything else holding the file (an analyst's DuckDB session) is waited for up to
    `wait_seconds`, then reported. A PostgreSQL catalog (`postgres:<libpq conninfo>`) takes any
    number of readers; writers queue on an advisory lock for up to `wait_seconds`.
    """
    catalog, data_path = normalise(catalog, data_path)
    with contextlib.ExitStack() as stack:
        hold(stack, catalog, data_path, read_only, wait_seconds)
        con = lake_connection(catalog, data_path, s3)
        stack.callback(con.close)
        attach(con, catalog, data_path, read_only, wait_seconds)
        yield con


class Session:
    """One process's hold on the lake across many registrations (`omicslake.registrar`): the lake
    attached while loads keep coming. `release()` closes the connection and frees the writers'
    lock, so readers (probes, `omicslake status`) and other writers get their turn. Closed, not only
    detached: DuckDB 1.5.5 keeps memory for every ATTACH of the catalog in a connection (~1 MB per
    re-attach at 300 tables, ~3 MB at 1,000: a registrar reached 3.4 GB after 1,000 loads of a run,
    releasing between most of them); a new connection per attach stays flat."""

    def __init__(self, catalog: str, data_path: str, s3: list[dict] | None = None, wait_seconds: float = 600):
        self.catalog, self.data_path = normalise(catalog, data_path)
        self.s3, self.wait_seconds = s3 or [], wait_seconds
        self.con: duckdb.DuckDBPyConnection | None = None
        self.held: contextlib.ExitStack | None = None

    def matches(self, catalog: str, data_path: str, s3: list[dict] | None) -> bool:
        return (self.catalog, self.data_path, self.s3) == (*normalise(catalog, data_path), s3 or [])

    def connection(self) -> duckdb.DuckDBPyConnection:
        """The connection with the lake attached read-write (attaching it when released)."""
        if self.held is None:
            held = contextlib.ExitStack()
            try:
                hold(held, self.catalog, self.data_path, False, self.wait_seconds)
                if self.con is None:
                    self.con = lake_connection(self.catalog, self.data_path, self.s3)
                attach(self.con, self.catalog, self.data_path, False, self.wait_seconds)
            except BaseException:
                held.close()
                raise
            held.callback(self.close_connection)
            self.held = held
        return self.con

    def wanted(self) -> bool:
        """Is another Omicslake process waiting for the lake?"""
        return is_file_catalog(self.catalog) and bool(waiting(f"{self.catalog}.lock"))

    def release(self) -> None:
        if self.held is not None:
            held, self.held = self.held, None
            with contextlib.suppress(duckdb.Error):  # a broken connection: closing it frees the lake too
                held.close()

    def close_connection(self) -> None:
        con, self.con = self.con, None
        con.close()

    def close(self) -> None:
        self.release()


def hold(stack: contextlib.ExitStack, catalog: str, data_path: str, read_only: bool, wait_seconds: float) -> None:
    """Take Omicslake's lock on the lake (a file lock beside a DuckDB file, PostgreSQL's advisory lock for writers)."""
    if not read_only and "://" not in data_path:
        Path(data_path).mkdir(parents=True, exist_ok=True)
    if is_file_catalog(catalog):
        if read_only and not Path(catalog).exists():
            raise NoLake(f"no lake catalog at {catalog}", fix="run the workflow first (or correct lake.catalog)")
        Path(catalog).parent.mkdir(parents=True, exist_ok=True)
        lock_file(stack, f"{catalog}.lock", read_only, wait_seconds)
    elif not read_only:
        writer_lock(stack, catalog, wait_seconds)


def lake_connection(catalog: str, data_path: str, s3: list[dict] | None) -> duckdb.DuckDBPyConnection:
    """A connection with the extensions the lake needs and a secret for each S3 location."""
    remote = s3 or is_url(data_path)  # DuckLake needs httpfs to attach a data path on S3 or https
    con = connect(*(["postgres"] if catalog.startswith("postgres:") else []), *(["httpfs"] if remote else []))
    try:
        for i, bucket in enumerate(s3 or []):
            con.execute(s3_secret(f"omicslake_s3_{i}", bucket))
    except BaseException:
        con.close()
        raise
    return con


def attach(con: duckdb.DuckDBPyConnection, catalog: str, data_path: str, read_only: bool, wait_seconds: float) -> None:
    """ATTACH the lake as `lake`; a DuckDB file another session holds is waited for up to `wait_seconds`."""
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            con.execute(attach_sql(catalog, data_path, read_only=read_only))
            return
        except duckdb.Error as e:
            held = is_file_catalog(catalog) and bool(re.search(r"set lock on file|conflicting lock", str(e), re.I))
            if held and time.monotonic() < deadline:
                time.sleep(1)
                continue
            if read_only and "creating a new DuckLake is explicitly disabled" in str(e):
                raise NoLake(
                    f"no lake catalog at {catalog}", fix="run the workflow first (or correct lake.catalog)"
                ) from None
            newer = re.search(r"version number (\d+), but we can only read versions between (\d+) and (\d+)", str(e))
            if newer:
                raise OmicslakeError(
                    f"the lake catalog {catalog} was written by a newer DuckDB (storage version {newer[1]}; "
                    f"DuckDB {duckdb.__version__} here reads {newer[2]} to {newer[3]})",
                    "read and write this lake with the DuckDB version that wrote it (docs: which clients can attach "
                    "a lake), or restore the catalog from a backup made by this version",
                ) from None
            hint = {True: " (is a DuckDB session attached to it?)", False: ""}[held]
            fix = "close the other DuckDB session, then run again" if held else None
            if catalog.startswith("postgres:"):
                fix = postgres_fix(str(e))
            raise OmicslakeError(f"cannot open the lake catalog {catalog}: {first_line(e)}{hint}", fix) from None


WRITER_LOCK = 0x6F6D6963736C616B  # "omicslak": the advisory lock of a PostgreSQL catalog's writers


def writer_lock(stack: contextlib.ExitStack, catalog: str, wait_seconds: float) -> None:
    """Hold PostgreSQL's advisory lock while writing: registrations serialise instead of relying
    on DuckLake's optimistic retry, which has open multi-writer bugs. PostgreSQL frees it when this
    process's connection ends, killed or not."""
    import psycopg

    try:
        pg = stack.enter_context(
            psycopg.connect(catalog.removeprefix("postgres:"), autocommit=True, keepalives=1, keepalives_idle=30)
        )  # keepalives: a firewall that drops an idle connection would free the lock mid-registration
        if pg.info.server_version >= 140000:
            pg.execute("SET idle_session_timeout = 0")  # nor may the server end the idle session
        pg.execute(f"SET lock_timeout = {max(1, int(wait_seconds * 1000))}")
        pg.execute("SELECT pg_advisory_lock(%s)", [WRITER_LOCK])
    except psycopg.errors.LockNotAvailable:
        raise OmicslakeError(
            f"another writer held the lake {catalog} for {wait_seconds:.0f} s",
            fix="run again once the other registration has finished",
        ) from None
    except psycopg.Error as e:
        raise OmicslakeError(f"cannot open the lake catalog {catalog}: {first_line(e)}", postgres_fix(str(e))) from None


def postgres_fix(message: str) -> str:
    """What to do when PostgreSQL refuses the catalog connection, by what it said."""
    text = message.lower()
    if "password" in text:
        return "set the password in PGPASSWORD or ~/.pgpass (and check user= in lake.catalog)"
    if "does not exist" in text:
        return "create that database or role (createdb), or correct lake.catalog"
    if "connection refused" in text or "timeout" in text or "could not" in text or "translate host" in text:
        return "start PostgreSQL, or correct host= and port= in lake.catalog; then run again"
    return "check lake.catalog and that PostgreSQL is reachable, with the password in PGPASSWORD or ~/.pgpass"


def lock_file(stack: contextlib.ExitStack, path: str, shared: bool, wait_seconds: float | None = None) -> None:
    """Take the lock beside the catalog (a reader waits `wait_seconds` at most, a writer as long
    as it takes); readers without write access, and filesystems without flock (some Lustre
    mounts), go without it and rely on DuckDB's own lock. While it waits, a process says so in a
    file `<lock>.wait.<pid>`: a registrar holding the lake between loads lets it go (`Session`)."""
    try:
        lock = stack.enter_context(open(path, "a"))  # noqa: SIM115 (closed by the stack)
        try:
            fcntl.flock(lock, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        with announced(path) as mark:
            deadline = None if not shared or wait_seconds is None else time.monotonic() + wait_seconds
            while True:
                try:
                    fcntl.flock(lock, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
                    return
                except BlockingIOError:
                    if deadline is not None and time.monotonic() >= deadline:
                        raise OmicslakeError(
                            f"the lake catalog {path.removesuffix('.lock')} is busy: a registration is running",
                            "wait for it to finish, then ask again",
                        ) from None
                    mark.refresh()
                    time.sleep(0.05)
    except PermissionError:
        if not shared:
            raise
    except OSError as e:
        if e.errno not in (errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOLCK):
            raise


class Mark:
    """`<lock>.wait.<pid>`: this process waits for the lock (refreshed while it waits)."""

    def __init__(self, lock: str):
        self.path, self.touched = Path(f"{lock}.wait.{os.getpid()}"), 0.0

    def refresh(self) -> None:
        if time.monotonic() - self.touched > 10:
            with contextlib.suppress(OSError):  # where it cannot be written, nobody learns of the wait
                self.path.touch()
            self.touched = time.monotonic()


@contextlib.contextmanager
def announced(lock: str) -> Iterator[Mark]:
    mark = Mark(lock)
    mark.refresh()
    try:
        yield mark
    finally:
        with contextlib.suppress(OSError):
            mark.path.unlink(missing_ok=True)


def waiting(lock: str) -> list[Path]:
    """The marks of processes waiting for `lock` (one not refreshed for a minute is a crashed waiter's)."""
    now, found = time.time(), []
    for mark in Path(lock).parent.glob(f"{Path(lock).name}.wait.*"):
        with contextlib.suppress(OSError):
            if now - mark.stat().st_mtime < 60:
                found.append(mark)
    return found


def table_columns(con, schema: str, table: str) -> dict[str, str] | None:
    """{column: type} of a lake table, None when it does not exist. (Not `duckdb_columns()`: it
    lists every column of every table, which in a lake of thousands of datasets takes longer than
    registering one.)"""
    if not table_exists(con, schema, table):
        return None
    rows = con.execute(f"DESCRIBE {ALIAS}.{ident(schema)}.{ident(table)}").fetchall()
    return {name: type_ for name, type_, *_ in rows}


def table_exists(con, schema: str, table: str) -> bool:
    """Does the lake's last committed snapshot have this table?"""
    return bool(
        con.execute(
            f"SELECT count(*) FROM {META}.ducklake_table t JOIN {META}.ducklake_schema s USING (schema_id) "
            "WHERE s.schema_name = ? AND t.table_name = ? AND t.end_snapshot IS NULL AND s.end_snapshot IS NULL",
            [schema, table],
        ).fetchone()[0]
    )


def ident(name: str) -> str:
    """`name` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def is_url(path: str) -> bool:
    """A URL (s3://, https://, ...), not a local path."""
    return "://" in path


def table_folder(con, schema: str, table: str, data_path: str) -> Path:
    """The folder DuckLake uses for a table: files placed there are stored relative to DATA_PATH."""
    row = con.execute(
        f"SELECT s.path, s.path_is_relative, t.path, t.path_is_relative FROM {META}.ducklake_table t "
        f"JOIN {META}.ducklake_schema s USING (schema_id) WHERE s.schema_name = ? AND t.table_name = ? "
        "AND t.end_snapshot IS NULL AND s.end_snapshot IS NULL",
        [schema, table],
    ).fetchone()
    if row is None:
        row = con.execute(
            f"SELECT path, path_is_relative, ?, true FROM {META}.ducklake_schema "
            "WHERE schema_name = ? AND end_snapshot IS NULL",
            [f"{table}/", schema],
        ).fetchone()
    if row is None:
        row = (f"{schema}/", True, f"{table}/", True)  # DuckLake's default for a new schema and table
    schema_path, schema_rel, table_path, table_rel = row
    base = Path(schema_path) if not schema_rel else Path(data_path, schema_path)
    return Path(table_path) if not table_rel else base / table_path


def registered_paths(con, tables: list[tuple[str, str]]) -> set[str]:
    """Absolute paths of the data files DuckLake lists for these (schema, table) pairs."""
    paths = set()
    for schema, table in tables:
        if table_exists(con, schema, table):
            rows = con.execute("SELECT data_file FROM ducklake_list_files(?, ?, schema => ?)", [ALIAS, table, schema])
            paths.update(r[0] for r in rows.fetchall())
    return paths


def row_id_ranges(con, schema: str, table: str, paths: list[str]) -> list[tuple[int, int]]:
    """Row id ranges of these data files of the table (provenance paths), adjacent ranges merged.
    A file in DATA_PATH is found by its name (dlt's names are unique), one in place by its URL."""
    names = [Path(p).name for p in paths if not is_url(p)]
    urls = [p for p in paths if is_url(p)]
    spans = con.execute(
        f"SELECT df.row_id_start, df.row_id_start + df.record_count - 1 FROM {META}.ducklake_data_file df "
        f"JOIN {META}.ducklake_table t USING (table_id) JOIN {META}.ducklake_schema s USING (schema_id) "
        "WHERE s.schema_name = ? AND t.table_name = ? AND t.end_snapshot IS NULL AND s.end_snapshot IS NULL "
        "AND df.end_snapshot IS NULL AND (CASE WHEN df.path_is_relative THEN regexp_extract(df.path, '[^/]*$') IN ? "
        "ELSE df.path IN ? END) ORDER BY 1",
        [schema, table, names or [""], urls or [""]],
    ).fetchall()
    merged: list[tuple[int, int]] = []
    for first, last in spans:
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(last, merged[-1][1]))
        else:
            merged.append((first, last))
    return merged


def current_snapshot(con) -> int:
    """The id of the lake's last committed snapshot."""
    return con.execute(f"SELECT id FROM {ALIAS}.current_snapshot()").fetchone()[0]


def set_commit_message(con, message: str, extra_info: str) -> None:
    """The message (and JSON `extra_info`) of the snapshot the open transaction commits."""
    con.execute(f"CALL {ALIAS}.set_commit_message('omicslake', ?, extra_info => ?)", [message, extra_info])


def committed_as(con, message: str) -> int | None:
    """The newest snapshot committed with this message (None: none was)."""
    found = con.execute(
        f"SELECT max(snapshot_id) FROM {META}.ducklake_snapshot_changes WHERE commit_message = ?", [message]
    ).fetchone()
    return found[0] if found else None


def no_compaction(con, schema: str, table: str) -> None:
    """DuckLake's compaction (CHECKPOINT, merge_adjacent_files) rewrites registered files and, once
    `expire_older_than`/`delete_older_than` are set, deletes the originals: ours and objects
    registered in place alike. Every table omicslake registers into opts out; so does the whole
    catalog (`omicslake.provenance.PROVENANCE`), which covers a new table until its own option is
    set in the next transaction (`protect`)."""
    con.execute(f"CALL {ALIAS}.set_option('auto_compact', false, schema => ?, table_name => ?)", [schema, table])


def protect(con, tables: set[str]) -> None:
    """auto_compact off for those of `tables` (`<schema>.<table>`) that still exist (see `no_compaction`)."""
    for name in sorted(tables):
        schema, table = name.split(".", 1)
        if table_exists(con, schema, table):
            no_compaction(con, schema, table)


def table_names(con) -> set[str]:
    """`<schema>.<table>` of every table the lake has."""
    rows = con.execute("SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = ?", [ALIAS])
    return {f"{schema}.{table}" for schema, table in rows.fetchall()}


def table_files(con) -> list[tuple[str, str, int, int, int]]:
    """(schema, table, data files, bytes, rows) of every table of the lake but omicslake's own, from
    the catalog alone (a count(*) per table costs ~10 ms at 1,000 tables, growing with them).

    Rows: the live data files' rows, less their delete files' (one cumulative delete file per data
    file) and the deletes DuckLake inlined into the catalog (small DELETEs, such as a reload
    retiring a small load), plus the live rows it inlined (small INSERTs). The inlined tables are
    read only for the tables a snapshot says it inlined into (`ducklake_snapshot_changes`), or for
    every table once old snapshots were expired (their changes went with them). DuckLake 1.5's
    layout, pinned; tests compare each case with count(*)."""
    con.execute("BEGIN")  # one state of the catalog for all the queries
    try:
        tables = con.execute(
            f"""WITH files AS (
                    SELECT table_id, data_file_id, record_count, file_size_bytes FROM {META}.ducklake_data_file
                    WHERE end_snapshot IS NULL
                ), deleted AS (
                    SELECT d.table_id, sum(d.delete_count) AS deleted FROM {META}.ducklake_delete_file d
                    JOIN files f USING (data_file_id) WHERE d.end_snapshot IS NULL GROUP BY ALL
                ), inlined AS (
                    SELECT DISTINCT CAST(unnest(regexp_extract_all(
                        changes_made, 'inlined_(?:insert|delete):([0-9]+)', 1)) AS BIGINT) AS table_id
                    FROM {META}.ducklake_snapshot_changes
                )
                SELECT s.schema_name, t.table_name, t.table_id, count(f.data_file_id),
                       coalesce(sum(f.file_size_bytes), 0)::BIGINT,
                       (coalesce(sum(f.record_count), 0) - coalesce(any_value(d.deleted), 0))::BIGINT,
                       t.table_id IN (SELECT table_id FROM inlined)
                           OR (SELECT min(snapshot_id) > 0 FROM {META}.ducklake_snapshot)
                FROM {META}.ducklake_table t
                JOIN {META}.ducklake_schema s ON s.schema_id = t.schema_id AND s.end_snapshot IS NULL
                LEFT JOIN files f ON f.table_id = t.table_id
                LEFT JOIN deleted d ON d.table_id = t.table_id
                WHERE t.end_snapshot IS NULL AND s.schema_name <> 'omicslake'
                GROUP BY s.schema_name, t.table_name, t.table_id ORDER BY 1, 2"""
        ).fetchall()
        inlined = inlined_rows(con, {tid for _, _, tid, _, _, _, flagged in tables if flagged})
    finally:
        con.execute("ROLLBACK")  # read only: nothing to commit, and no error hidden by a failing COMMIT
    return [
        (schema, table, files, size, rows + inlined.get(tid, 0)) for schema, table, tid, files, size, rows, _ in tables
    ]


def inlined_rows(con, table_ids: set[int]) -> dict[int, int]:
    """{table id: live rows DuckLake inlined into the catalog, less the rows of live data files whose
    deletes it inlined}. Deletes of inlined rows end those rows (`end_snapshot`); deletes of a data
    file's rows are rows of `ducklake_inlined_delete_<table id>`, a table DuckLake creates at the
    first such delete."""
    if not table_ids:
        return {}
    found: dict[int, int] = {}
    for tid in sorted(table_ids):
        try:
            found[tid] = -con.execute(
                f"SELECT count(*) FROM {META}.ducklake_inlined_delete_{tid} WHERE file_id IN (SELECT data_file_id "
                f"FROM {META}.ducklake_data_file WHERE table_id = {tid} AND end_snapshot IS NULL)"
            ).fetchone()[0]
        except duckdb.CatalogException:  # no inlined delete of a data file's rows
            found[tid] = 0
    names = con.execute(
        f"SELECT table_id, table_name FROM {META}.ducklake_inlined_data_tables WHERE table_id IN ?", [sorted(table_ids)]
    ).fetchall()
    counts = [
        f"SELECT {tid} AS table_id, count(*) AS n FROM {META}.{ident(name)} WHERE end_snapshot IS NULL"
        for tid, name in names
    ]
    for start in range(0, len(counts), 500):  # a UNION ALL of hundreds of scans plans fast; thousands less so
        query = " UNION ALL ".join(counts[start : start + 500])
        for tid, n in con.execute(query).fetchall():
            found[tid] = found.get(tid, 0) + n
    return found


FILES = f"""
WITH tables AS (
    SELECT DISTINCT ON (table_id) table_id, schema_id, path, path_is_relative
    FROM {META}.ducklake_table ORDER BY table_id, begin_snapshot DESC
), schemas AS (
    SELECT DISTINCT ON (schema_id) schema_id, path, path_is_relative
    FROM {META}.ducklake_schema ORDER BY schema_id, begin_snapshot DESC
), files AS (
    SELECT table_id, path, path_is_relative, file_size_bytes, record_count FROM {META}.ducklake_data_file
    UNION ALL
    SELECT table_id, path, path_is_relative, file_size_bytes, NULL FROM {META}.ducklake_delete_file
)
SELECT CASE WHEN NOT f.path_is_relative THEN f.path
            WHEN NOT t.path_is_relative THEN t.path || f.path
            WHEN NOT s.path_is_relative THEN s.path || t.path || f.path
            ELSE ? || s.path || t.path || f.path END AS file,
       f.file_size_bytes, f.record_count
FROM files f JOIN tables t USING (table_id) JOIN schemas s ON s.schema_id = t.schema_id
ORDER BY file
"""


def referenced_files(con, data_path: str) -> list[tuple[str, int, int | None]]:
    """(file, bytes, rows) of every data and delete file the catalog references in any snapshot
    (rows None for a delete file), by the name DuckDB reads it under."""
    return con.execute(FILES, [data_path]).fetchall()


def copy_tables(con, conninfo: str, target: Path) -> None:
    """Every DuckLake table of a PostgreSQL catalog into a new DuckDB file, in one transaction."""
    con.execute(f"ATTACH '{quote(conninfo)}' AS catalog_source (TYPE postgres, READ_ONLY)")
    con.execute(f"ATTACH '{quote(str(target))}' AS published")
    con.execute("BEGIN")  # one consistent read, whatever writers commit meanwhile
    tables = con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = 'catalog_source' "
        "AND table_name LIKE 'ducklake%'"
    ).fetchall()
    for schema, table in tables:
        con.execute(f'CREATE TABLE published.main."{table}" AS SELECT * FROM catalog_source."{schema}"."{table}"')
    con.execute("COMMIT")
    con.execute("DETACH published")
    con.execute("DETACH catalog_source")


def relocate(copy: duckdb.DuckDBPyConnection, data_path: str) -> int:
    """Point a copied DuckDB-file catalog (`copy`: a connection to the file itself, not an attached
    lake) at another data path; return its last snapshot."""
    copy.execute("UPDATE ducklake_metadata SET value = ? WHERE key = 'data_path' AND scope IS NULL", [data_path])
    return copy.execute("SELECT max(snapshot_id) FROM ducklake_snapshot").fetchone()[0]
