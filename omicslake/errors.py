"""One error type that names the dataset, the file, the cause and what the user can do about it."""


class OmicslakeError(Exception):
    """An error whose message is meant for the user, not a traceback; `fix` says what to do."""

    def __init__(self, message: str, fix: str | None = None):
        self.message, self.fix = message, fix
        super().__init__(f"{message}; fix: {fix}" if fix else message)


class ConfigError(OmicslakeError, ValueError):
    """A config the workflow cannot run: `config key <key>: <what is wrong>; fix: <what to do>`."""


class DatasetError(OmicslakeError):
    """A dataset cannot be loaded: `<dataset>: <file>: <cause>; fix: <fix>`."""

    def __init__(self, dataset: str, cause: str, file: str | None = None, fix: str | None = None):
        self.dataset, self.file, self.cause = dataset, file, cause
        where = f"{dataset}: {file}" if file else dataset
        super().__init__(f"{where}: {cause}", fix)


# What to do, for causes many modules share.
RERUN = "run the workflow again (it resumes; the lake is unchanged)"
SERVER_DOWN = (
    "check that the server is up and the URL's host and port are right (or raise download.retries / "
    "download.timeout_seconds), then run again"
)
CHECKSUM = (
    "the download was corrupted or the file changed upstream: run again; if it fails again, check the "
    "checksum in the config (or tell the data provider)"
)
RESTAGE = "delete the dataset's staging folder (<staging>/<source>/<name>), then run again: it is staged anew"
S3_CREDENTIALS = (
    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), or `anonymous: true` for a public bucket"
)


def extra(module: str, name: str):
    """Import `module`; a missing one is one line naming the extra of Omicslake that installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:  # not another ImportError: an installed library that fails to import
        raise OmicslakeError(
            f"{e.name or module} is not installed: it comes with omicslake[{name}]",
            f"pip install 'omicslake[{name}]' in the workflow's Python (or run with --sdm conda: envs/)",
        ) from None


def causes(exc: BaseException | None):
    """The exception and what caused it, outermost first (dlt wraps errors as `.exception`)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        yield exc
        seen.add(id(exc))
        exc = getattr(exc, "exception", None) or exc.__cause__ or exc.__context__


def root_dataset_error(exc: BaseException) -> DatasetError | None:
    """The DatasetError in an exception chain, if any."""
    return next((e for e in causes(exc) if isinstance(e, DatasetError)), None)


def first_line(e: BaseException) -> str:
    """The first line of an exception's message: library errors can run to many lines."""
    return (str(e).strip().splitlines() or [type(e).__name__])[0]
