"""Progress of long work (downloads, unpacking): a bar on a terminal, plain log lines in a batch job.

A `Progress` is fed the bytes as they are written (`wrap(file)` counts a file's writes). Where
stderr is a terminal (`omicslake ingest …` run by hand) rich draws a bar with bytes, rate and ETA.
Elsewhere (a workflow job, whose stderr is its log file; a SLURM job) it logs through `logging`
("omicslake.progress") at most one line every INTERVAL seconds, and one at the end with the total
and the average rate; never a carriage return:

    http.gene_info: Homo_sapiens.gene_info.gz: 120.0 MB of 500.0 MB (24%), 12.3 MB/s, ETA 31 s
    http.gene_info: Homo_sapiens.gene_info.gz: 500.0 MB in 41 s (12.2 MB/s)
"""

from __future__ import annotations

import logging
import sys
import threading
import time

INTERVAL = 30.0  # seconds between two log lines of one piece of work in a batch job
log = logging.getLogger("omicslake.progress")


class Progress:
    """`done` bytes of `total` (None: unknown) of the work `label`; `done` > 0 resumes (those
    bytes count towards the total, not towards the rate)."""

    def __init__(self, label: str, total: int | None = None, done: int = 0, stream=None):
        self.label, self.total, self.done, self.resumed = label, total, done, done
        self.started = self.last = time.monotonic()
        self.last_done = done
        self.closed = False
        stream = stream if stream is not None else sys.stderr
        self.bar = bars.add(stream, label, total, done) if interactive(stream) else None

    def update(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            bars.advance(self.bar, n)
            return
        now = time.monotonic()
        if now - self.last >= INTERVAL and not (self.total and self.done >= self.total):  # the end: close's line
            rate = (self.done - self.last_done) / (now - self.last)  # over the last interval: the speed now
            line = f"{self.label}: {size(self.done)}"
            if self.total:
                line += f" of {size(self.total)} ({100 * self.done // self.total}%)"
            line += f", {size(rate)}/s"
            if self.total:
                line += f", ETA {duration((self.total - self.done) / rate) if rate else 'unknown'}"
            log.info("%s", line)
            self.last, self.last_done = now, self.done

    def close(self) -> None:
        """End the bar, or log the total and the average rate (once)."""
        if self.closed:
            return
        self.closed = True
        if self.bar is not None:
            bars.remove(self.bar)
            return
        elapsed = time.monotonic() - self.started
        rate = size((self.done - self.resumed) / elapsed if elapsed > 0 else 0)
        if self.total is None or self.done >= self.total:
            resumed = f", resumed at {size(self.resumed)}" if self.resumed else ""
            log.info("%s: %s in %s (%s/s%s)", self.label, size(self.done), duration(elapsed), rate, resumed)
        else:
            share = f"{size(self.done)} of {size(self.total)} ({100 * self.done // self.total}%)"
            log.info("%s: stopped at %s after %s (%s/s)", self.label, share, duration(elapsed), rate)

    def wrap(self, file, close: bool = False) -> Writer:
        """`file` with its writes counted here; `close`: closing it also closes this progress."""
        return Writer(file, self, close)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Writer:
    """A binary file whose writes advance a Progress (what `Part.open` returns)."""

    def __init__(self, file, progress: Progress, close: bool):
        self.file, self.progress, self.closes = file, progress, close

    def write(self, data) -> int:
        written = self.file.write(data)
        self.progress.update(len(data))
        return written

    def close(self) -> None:
        try:
            self.file.close()
        finally:
            if self.closes:
                self.progress.close()

    def __getattr__(self, name):
        return getattr(self.file, name)

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def interactive(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed file
        return False


class Bars:
    """The rich display every bar of the process shares (rich draws one live display at a time):
    started with the first bar, stopped (finished bars left on screen) when the last one closes."""

    def __init__(self):
        self.lock = threading.Lock()
        self.display = None
        self.open = 0

    def add(self, stream, label: str, total: int | None, done: int):
        with self.lock:
            if self.display is None:
                from rich.console import Console
                from rich.progress import (
                    BarColumn,
                    DownloadColumn,
                    TextColumn,
                    TimeRemainingColumn,
                    TransferSpeedColumn,
                )
                from rich.progress import Progress as Display

                self.display = Display(
                    TextColumn("{task.description}"),
                    BarColumn(),
                    DownloadColumn(),
                    TransferSpeedColumn(),
                    TimeRemainingColumn(),
                    console=Console(file=stream),
                    redirect_stdout=False,
                    redirect_stderr=False,
                )
                self.display.start()
            self.open += 1
            return self.display.add_task(label, total=total, completed=done)

    def advance(self, task, n: int) -> None:
        self.display.advance(task, n)

    def remove(self, task) -> None:
        with self.lock:
            self.display.refresh()
            self.open -= 1
            if self.open == 0:
                self.display.stop()
                self.display = None


bars = Bars()


def size(n: float) -> str:
    """Bytes in decimal units, as rich and most tools print them: 950 B, 12.3 kB, 120.0 MB."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError


def duration(seconds: float) -> str:
    if seconds < 9.95:
        return f"{seconds:.1f} s"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"
