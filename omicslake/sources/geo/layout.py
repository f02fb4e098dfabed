"""GEO's FTP layout: where an accession's files are, and which of them a load reads.

GSE105845 -> series/GSE105nnn/GSE105845/{matrix,soft,suppl}/ (GSE781 -> GSEnnn); GDS in
datasets/GDSnnn/GDS507/soft/; GPL annotations in platforms/GPLnnn/GPL97/annot/.
"""

from __future__ import annotations

from pathlib import Path

from omicslake.download import DownloadSettings, NotFound, listing
from omicslake.errors import DatasetError
from omicslake.manifest import Upstream
from omicslake.urls import public

KINDS = {"series": "GSE", "datasets": "GDS", "platforms": "GPL"}
TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".tab")


def folder_url(base_url: str, accession: str, sub: str) -> str:
    prefix, number = accession[:3], accession[3:]
    top = {"GSE": "series", "GDS": "datasets", "GPL": "platforms"}[prefix]
    return f"{base_url.rstrip('/')}/{top}/{prefix}{number[:-3]}nnn/{accession}/{sub}/"


def unknown(accession: str) -> str:
    """What to do when GEO has no such accession (or not the file a load reads)."""
    return (
        f"check that {accession} exists (https://www.ncbi.nlm.nih.gov/geo/query/acc.cgi?acc={accession}): "
        "a typo, or not public yet? Else remove it from sources.geo"
    )


def named(dataset: str, url: str, name: str, accession: str, settings: DownloadSettings) -> list[Upstream]:
    """The file `name` of a folder; an error naming the folder when it has none."""
    try:
        files = [f for f in listing(dataset, url, settings) if Path(f.url).name == name]
    except NotFound as e:
        raise NotFound(dataset, e.cause, e.file, fix=unknown(accession)) from None
    if not files:
        raise DatasetError(dataset, f"GEO has no {name} here", public(url), fix=unknown(accession))
    return files


def remote_files(dataset: str, entry: dict, settings: DownloadSettings) -> tuple[list, list, list]:
    """(GEO files to parse, supplementary tables to load, supplementary files listed) of an accession."""
    base, accession, kind = entry["base_url"], entry["accession"], entry["kind"]
    if kind == "datasets":
        return named(dataset, folder_url(base, accession, "soft"), f"{accession}.soft.gz", accession, settings), [], []
    if kind == "platforms":
        return (
            named(dataset, folder_url(base, accession, "annot"), f"{accession}.annot.gz", accession, settings),
            [],
            [],
        )
    try:
        matrices = [
            f
            for f in listing(dataset, folder_url(base, accession, "matrix"), settings)
            if f.url.endswith("_series_matrix.txt.gz")
        ]
    except NotFound:
        matrices = []  # some series have only the family SOFT
    if not matrices:
        matrices = named(
            dataset, folder_url(base, accession, "soft"), f"{accession}_family.soft.gz", accession, settings
        )
    listed = []
    if entry["supplementary"] != "none":
        try:
            listed = listing(dataset, folder_url(base, accession, "suppl"), settings)
        except NotFound:
            listed = []  # no supplementary folder: the headers still name the files
    tables = [f for f in listed if entry["supplementary"] == "load" and is_table(Path(f.url).name)]
    return matrices, tables, listed


def is_table(name: str) -> bool:
    """A supplementary file worth loading: a delimited text table (filelist.txt is GEO's index)."""
    stem = name.removesuffix(".gz").lower()
    return name != "filelist.txt" and stem.endswith(TABLE_SUFFIXES)
