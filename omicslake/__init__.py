"""Omicslake: public omics data into a zero-copy DuckLake."""

__version__ = "0.1.0"


def workflow_version() -> str:
    """Package version plus the git commit of the checkout it runs from (`-dirty`: with local edits)."""
    import subprocess
    from pathlib import Path

    try:
        commit = subprocess.run(
            ["git", "-C", str(Path(__file__).parent), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return __version__
    return f"{__version__}+{commit}" if commit else __version__


def module_command(module: str) -> tuple[list[str], dict[str, str]]:
    """The command and environment that run `python -m <module>` of this omicslake (the one beside
    the workflow, importable even where it is not installed) in a process of its own."""
    import os
    import sys
    from pathlib import Path

    package = str(Path(__file__).resolve().parent.parent)
    path = os.pathsep.join(filter(None, [package, os.environ.get("PYTHONPATH")]))
    return [sys.executable, "-m", module], {**os.environ, "PYTHONPATH": path}
