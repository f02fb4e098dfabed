"""One error type that names the dataset, the file and the cause."""


class OmicslakeError(Exception):
    """An error whose message is meant for the user, not a traceback."""


class DatasetError(OmicslakeError):
    """A dataset cannot be loaded."""

    def __init__(self, dataset: str, cause: str, file: str | None = None):
        self.dataset, self.file, self.cause = dataset, file, cause
        where = f"{dataset}: {file}" if file else dataset
        super().__init__(f"{where}: {cause}")


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
