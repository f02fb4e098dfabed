"""Access to the DuckLake catalog: offline extension loading, attach, one writer at a time."""

from __future__ import annotations

import contextlib
import fcntl
import importlib
from collections.abc import Iterator
from pathlib import Path

import duckdb

ALIAS = "lake"


def extension_file(name: str) -> Path:
    """The DuckDB extension shipped in the pinned `duckdb-extension-<name>` package."""
    pkg = importlib.import_module(f"duckdb_extension_{name}")
    version = f"v{duckdb.__version__}"
    path = Path(pkg.__file__).parent / "extensions" / version / f"{name}.duckdb_extension"
    if not path.exists():
        raise RuntimeError(f"{path} missing: install duckdb-extension-{name}=={duckdb.__version__}")
    return path


def connect(*extensions: str) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with extensions loaded from package files, never downloaded."""
    con = duckdb.connect(config={"autoinstall_known_extensions": False})
    for name in ("ducklake", *extensions):
        con.load_extension(str(extension_file(name)))  # straight from the file: nothing written to ~/.duckdb
    return con


def attach_sql(catalog: str, data_path: str, alias: str = ALIAS, read_only: bool = False) -> str:
    """The ATTACH statement for the lake; DATA_PATH always wins, so a moved lake still reads."""
    options = [f"DATA_PATH '{data_path}'", "OVERRIDE_DATA_PATH true"]
    if read_only:
        options.append("READ_ONLY")
    return f"ATTACH 'ducklake:{catalog}' AS {alias} ({', '.join(options)})"


def normalise(catalog: str, data_path: str) -> tuple[str, str]:
    """Absolute catalog path and data path (with trailing slash) for a DuckDB-file catalog."""
    data = str(Path(data_path).resolve()) + "/"
    if catalog.startswith(("postgres:", "sqlite:")):
        return catalog, data
    return str(Path(catalog).resolve()), data


@contextlib.contextmanager
def open_lake(catalog: str, data_path: str, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """Attach the lake as `lake`.

    A DuckDB-file catalog admits one process at a time (a read-write attach blocks even readers),
    so access goes through a lock file beside it: writers exclusive, readers shared. Both then
    wait for each other instead of failing.
    """
    catalog, data_path = normalise(catalog, data_path)
    if not read_only:
        Path(data_path).mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        if not catalog.startswith(("postgres:", "sqlite:")):
            if read_only and not Path(catalog).exists():
                raise FileNotFoundError(f"no lake catalog at {catalog}: run the workflow first")
            Path(catalog).parent.mkdir(parents=True, exist_ok=True)
            lock = stack.enter_context(open(f"{catalog}.lock", "a"))
            fcntl.flock(lock, fcntl.LOCK_SH if read_only else fcntl.LOCK_EX)
        con = connect()
        stack.callback(con.close)
        con.execute(attach_sql(catalog, data_path, read_only=read_only))
        yield con
