"""Omicslake: public omics data into a zero-copy DuckLake."""

__version__ = "0.1.0"


def workflow_version() -> str:
    """Package version plus the git commit of the checkout it runs from, when there is one."""
    import subprocess
    from pathlib import Path

    try:
        commit = subprocess.run(
            ["git", "-C", str(Path(__file__).parent), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return __version__
    return f"{__version__}+g{commit}" if commit else __version__
