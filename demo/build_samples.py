"""Rebuild the demo's committed GEO mirror (demo/geo/) from the GEO file builders of standins/geo_tree.py.

    python demo/build_samples.py

The files copy the structure of real NCBI files (see standins/geo_tree.py); the probes are annotated
with the genes of the NCBI gene_info excerpt in demo/data/gene_info.tsv.gz and their values are
generated: deterministic, with a tumour/normal difference for a few genes, so the demo's
cross-source query has something to show. Run it only when the builders change; the output is
committed so the demo needs no build step.
"""

from __future__ import annotations

import gzip
import math
import random
import re
import shutil
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parent
sys.path.insert(0, str(DEMO.parent))

from standins import geo_tree  # noqa: E402

# Genes of demo/data/gene_info.tsv.gz: probe {p + 1000}_at measures GENES[p]
GENES = ["A1BG", "A2M", "NAT1", "NAT2", "SERPINA3", "AADAC", "AAMP", "AANAT", "ABAT", "ABCA1",
         "BRCA1", "BRCA2", "EGFR", "KRAS", "MYC", "PIK3CA", "TNF", "TP53"]  # fmt: skip
TUMOUR_FOLD = {"EGFR": 3.2, "MYC": 2.5, "A2M": 1.8, "TNF": 1.6, "AADAC": 0.3, "ABAT": 0.35, "NAT2": 0.5}
SAMPLES = geo_tree.GSE781_GPL97  # six GPL97 samples; odd ones are tumour (as matrix_text labels them)


def values() -> dict[tuple[int, str], float]:
    """(probe, sample) -> a MAS5-like intensity: a per-gene level, the tumour fold, 10% noise."""
    rng = random.Random(781)
    out = {}
    for p, gene in enumerate(GENES):
        level = math.exp(rng.uniform(math.log(80), math.log(3000)))
        for i, sample in enumerate(SAMPLES):
            fold = TUMOUR_FOLD.get(gene, 1.0) if i % 2 else 1.0
            out[p, sample] = round(level * fold * rng.uniform(0.9, 1.1), 1)
    return out


def symbols(text: str) -> str:
    """GENE<p> -> the demo's gene symbols."""
    return re.sub(r"GENE(\d+)", lambda m: GENES[int(m[1])], text)


def annotation(n: int) -> bytes:
    """The GPL97 annotation with each probe's gene as NCBI's gene_info has it: one symbol, its
    GeneID, description, chromosome and map location (no second symbol, as the generated file has for some)."""
    info = {}
    with gzip.open(DEMO / "data" / "gene_info.tsv.gz", "rt") as f:
        header = f.readline().rstrip("\n").split("\t")
        for line in f:
            row = dict(zip(header, line.rstrip("\n").split("\t"), strict=True))
            info[row["Symbol"]] = row
    lines = geo_tree.annot_bytes("GPL97", n).decode("latin-1").split("\n")
    for i, line in enumerate(lines):
        cells = line.split("\t")
        if re.fullmatch(r"\d+_at", cells[0]):
            gene = info[GENES[int(cells[0].removesuffix("_at")) - 1000]]
            cells[1:4] = [gene["description"], gene["Symbol"], gene["GeneID"]]
            cells[13:15] = [gene["map_location"], f"Chromosome {gene['chromosome']}"]
            lines[i] = "\t".join(cells)
    return "\n".join(lines).encode("latin-1")


def with_values(text: str, first_value_column: int, samples: list[str], table_end: str) -> str:
    """Replace a generated table's values (rows after the header up to `table_end`) with values()."""
    grid = values()
    lines = text.splitlines()
    begin = next(i for i, line in enumerate(lines) if line.endswith("_table_begin")) + 2
    end = lines.index(table_end)
    for row in range(begin, end):
        cells = lines[row].split("\t")
        p = int(cells[0].strip('"').removesuffix("_at")) - 1000
        cells[first_value_column:] = [str(grid[p, s]) for s in samples]
        lines[row] = "\t".join(cells)
    return "\n".join(lines) + "\n"


def build(root: Path) -> None:
    if root.exists():
        shutil.rmtree(root)
    n = len(GENES)
    matrix = geo_tree.matrix_text("GSE781", "GPL97", SAMPLES, n, seed=2)
    geo_tree.write_gz(
        root / "series/GSEnnn/GSE781/matrix/GSE781-GPL97_series_matrix.txt.gz",
        with_values(matrix, 1, SAMPLES, "!series_matrix_table_end"),
    )
    normal, tumour = SAMPLES[0::2], SAMPLES[1::2]  # GDS subsets: the first half normal, the rest RCC
    gds = geo_tree.gds_text("GDS507", "GSE781", "GPL97", normal + tumour, n)
    geo_tree.write_gz(
        root / "datasets/GDSnnn/GDS507/soft/GDS507.soft.gz",
        symbols(with_values(gds, 2, normal + tumour, "!dataset_table_end")),
    )
    geo_tree.write_gz(root / "platforms/GPLnnn/GPL97/annot/GPL97.annot.gz", annotation(n))


if __name__ == "__main__":
    build(DEMO / "geo")
    print(f"wrote {DEMO / 'geo'}")
