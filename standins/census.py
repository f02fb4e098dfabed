"""A small CELLxGENE Census on disk, in the census's own layout, built from real counts.

Layout, names and column types copy census release 2025-11-08 (census schema 2.4.0):

    census_info/summary     soma_joinid, label, value          (census_build_date, ...)
    census_info/datasets    soma_joinid, citation, collection_id, ..., dataset_total_cell_count
    census_data/<organism>  Experiment: obs (categories as enumerations), ms/RNA/var,
                            ms/RNA/X/raw (sparse float32, cells x genes)

Cells and genes are scanpy's bundled pbmc68k_reduced (700 cells x 765 genes, its `.raw` matrix).
Each cell's census metadata comes from its cluster: three datasets, two of them lung, one of those
a re-upload (`is_primary_data` false); `disease` holds two values joined by ' || ' for G2M cells
and two genes share a `feature_name`, as census schema 2.4.0 allows. `copies` repeats the cells
(benchmarks); mus_musculus holds the first 100 cells of each copy and the first 300 genes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import scipy.sparse as sp

PBMC = Path(__file__).parent / "fixtures" / "cellxgene" / "pbmc68k_reduced.h5ad"
ENUM = pa.dictionary(pa.int8(), pa.string())
DATASETS = [  # (dataset_id, title, tissue, tissue_general, is_primary_data)
    ("2b6ad1c4-0c9a-4b29-b4b4-6a4a1a3a07e1", "PBMC 68k: peripheral blood", "blood", "blood", True),
    ("9d2e8a3f-51c7-4e9e-8a34-0f6c7b3d2c55", "PBMC 68k: lung immune cells", "lung", "lung", True),
    ("e41f0b6a-7d8c-4f1d-9e2b-3c5a6d7e8f90", "PBMC 68k: lung re-upload", "upper lobe of left lung", "lung", False),
]


def pbmc() -> tuple:
    """(counts, cell barcodes, gene symbols, cell types, clusters, disease) of pbmc68k_reduced."""
    import anndata

    adata = anndata.read_h5ad(PBMC)
    obs = adata.obs
    return (
        sp.csr_matrix(adata.raw.X, dtype=np.float32),
        list(obs.index),
        list(adata.raw.var.index),
        obs["bulk_labels"].astype(str).to_numpy(),
        obs["louvain"].astype(int).to_numpy(),
        np.where(obs["phase"].astype(str) == "G2M", "COVID-19 || influenza", "normal"),
    )


def build_census(uri: str | Path, build_date: str = "2025-11-08", copies: int = 1) -> str:
    """Write the census at `uri` (a folder, or s3:// with a context); return the uri."""
    import tiledbsoma as soma

    counts, barcodes, genes, cell_types, clusters, disease = pbmc()
    uri = str(uri)
    with soma.Collection.create(uri) as census:
        data = census.add_new_collection("census_data")
        cells = {}
        for organism, n_cells, n_genes in [("homo_sapiens", None, None), ("mus_musculus", 100, 300)]:
            rows = slice(None, n_cells)
            names = genes[:n_genes] if organism == "homo_sapiens" else [g.capitalize() for g in genes[:n_genes]]
            cells[organism] = write_experiment(
                data.add_new_collection(organism, soma.Experiment),
                counts[rows, :n_genes],
                [b for b in barcodes[rows]],
                names,
                cell_types[rows],
                clusters[rows],
                disease[rows],
                copies,
            )
        info = census.add_new_collection("census_info")
        summary = {
            "census_schema_version": "2.4.0",
            "census_build_date": build_date,
            "dataset_schema_version": "7.0.0",
            "total_cell_count": str(sum(cells.values())),
            "unique_cell_count": str(sum(cells.values())),
            "number_donors_homo_sapiens": "4",
            "number_donors_mus_musculus": "4",
        }
        add_dataframe(
            info,
            "summary",
            pa.table({"label": list(summary), "value": list(summary.values())}),
        )
        per_dataset = np.bincount(clusters % len(DATASETS), minlength=len(DATASETS)) * copies
        add_dataframe(
            info,
            "datasets",
            pa.table(
                {
                    "citation": ["Zheng et al. (2017) Nat Commun 8:14049"] * len(DATASETS),
                    "collection_id": ["b1a3e3c2-6c7e-4a8e-9a2e-5e2d1f0c9b11"] * len(DATASETS),
                    "collection_name": ["Massively parallel digital transcriptional profiling"] * len(DATASETS),
                    "collection_doi": ["10.1038/ncomms14049"] * len(DATASETS),
                    "collection_doi_label": ["Zheng et al. (2017) Nat Commun"] * len(DATASETS),
                    "dataset_id": [d[0] for d in DATASETS],
                    "dataset_version_id": [d[0][::-1] for d in DATASETS],
                    "dataset_title": [d[1] for d in DATASETS],
                    "dataset_h5ad_path": [f"{d[0]}.h5ad" for d in DATASETS],
                    "dataset_total_cell_count": pa.array(per_dataset, pa.int64()),
                }
            ),
        )
    return uri


def add_dataframe(parent, key: str, table: pa.Table) -> None:
    """A SOMA DataFrame indexed by soma_joinid 0..n-1 (tiledbsoma 2.x needs the domain)."""
    table = table.add_column(0, "soma_joinid", pa.array(np.arange(table.num_rows), pa.int64()))
    with new_dataframe(parent, key, table.schema, max(table.num_rows - 1, 0)) as df:
        df.write(table)


def new_dataframe(parent, key: str, schema: pa.Schema, last: int):
    """Create the DataFrame on its own, then add it: enumeration values written through
    `add_new_dataframe` of a collection opened for writing read back empty (tiledbsoma 2.2)."""
    import tiledbsoma as soma

    df = soma.DataFrame.create(f"{parent.uri.rstrip('/')}/{key}", schema=schema, domain=[(0, last)])
    parent.set(key, df, use_relative_uri=True)
    return df


def write_experiment(exp, counts, barcodes, genes, cell_types, clusters, disease, copies) -> int:
    """obs, ms/RNA/var and ms/RNA/X/raw of one organism; return its number of cells."""
    import tiledbsoma as soma

    n_cells, n_genes = counts.shape
    nnz = np.diff(counts.indptr)
    sums = np.asarray(counts.sum(axis=1)).ravel()
    means = np.divide(sums, nnz, out=np.zeros_like(sums), where=nnz > 0)
    squares = np.asarray(counts.multiply(counts).sum(axis=1)).ravel()
    variances = np.divide(squares, nnz, out=np.zeros_like(sums), where=nnz > 0) - means**2
    which = clusters % len(DATASETS)
    donor = [f"donor-{c % 4}" for c in clusters]

    def enum(values) -> pa.DictionaryArray:
        return pa.array(list(values), pa.string()).dictionary_encode().cast(ENUM)

    one = {
        "dataset_id": enum(DATASETS[i][0] for i in which),
        "assay": enum(["10x 3' v1"] * n_cells),
        "assay_ontology_term_id": enum(["EFO:0009901"] * n_cells),
        "cell_type": enum(cell_types),
        "development_stage": enum(["adult stage"] * n_cells),
        "disease": enum(disease),
        "donor_id": enum(donor),
        "is_primary_data": pa.array([DATASETS[i][4] for i in which]),
        "sex": enum(["female" if d in ("donor-0", "donor-2") else "male" for d in donor]),
        "suspension_type": enum(["cell"] * n_cells),
        "tissue": enum(DATASETS[i][2] for i in which),
        "tissue_type": enum(["tissue"] * n_cells),
        "tissue_general": enum(DATASETS[i][3] for i in which),
        "raw_sum": pa.array(sums.astype(np.float64)),
        "nnz": pa.array(nnz.astype(np.int64)),
        "raw_mean_nnz": pa.array(means.astype(np.float64)),
        "raw_variance_nnz": pa.array(variances.astype(np.float64)),
        "n_measured_vars": pa.array(np.full(n_cells, n_genes, np.int64)),
    }
    schema = pa.schema(
        [("soma_joinid", pa.int64()), ("observation_joinid", pa.string())]
        + [(name, column.type) for name, column in one.items()]
    )
    total = n_cells * copies
    with new_dataframe(exp, "obs", schema, total - 1) as obs:
        for copy in range(copies):
            first = copy * n_cells
            columns = {
                "soma_joinid": pa.array(np.arange(first, first + n_cells), pa.int64()),
                "observation_joinid": pa.array([f"{b}-{copy}" for b in barcodes]),
                **one,
            }
            obs.write(pa.table(columns, schema=schema))
    rna = exp.add_new_collection("ms").add_new_collection("RNA", soma.Measurement)
    names = list(genes)
    names[-1] = names[0]  # schema 2.4.0: feature_name is not unique, feature_id is
    with new_dataframe(
        rna,
        "var",
        pa.schema(
            [
                ("soma_joinid", pa.int64()),
                ("feature_id", pa.string()),
                ("feature_name", pa.string()),
                ("feature_type", pa.string()),
                ("feature_length", pa.int64()),
                ("nnz", pa.int64()),
                ("n_measured_obs", pa.int64()),
            ]
        ),
        n_genes - 1,
    ) as var:
        var.write(
            pa.table(
                {
                    "soma_joinid": pa.array(np.arange(n_genes), pa.int64()),
                    "feature_id": [f"ENSG{100000 + 17 * i:011d}" for i in range(n_genes)],
                    "feature_name": names,
                    "feature_type": ["protein_coding"] * n_genes,
                    "feature_length": pa.array(1000 + 7 * np.arange(n_genes), pa.int64()),
                    "nnz": pa.array(np.diff(counts.tocsc().indptr).astype(np.int64) * copies),
                    "n_measured_obs": pa.array(np.full(n_genes, total, np.int64)),
                }
            )
        )
    coo = counts.tocoo()
    per_write = max(1, 8_000_000 // max(coo.nnz, 1))  # copies per fragment: few, large fragments
    with rna.add_new_collection("X").add_new_sparse_ndarray("raw", type=pa.float32(), shape=(total, n_genes)) as x:
        for first in range(0, copies, per_write):
            offsets = np.arange(first, min(first + per_write, copies), dtype=np.int64) * n_cells
            x.write(
                pa.table(
                    {
                        "soma_dim_0": pa.array((coo.row.astype(np.int64)[None, :] + offsets[:, None]).ravel()),
                        "soma_dim_1": pa.array(np.tile(coo.col.astype(np.int64), len(offsets))),
                        "soma_data": pa.array(np.tile(coo.data, len(offsets)), pa.float32()),
                    }
                )
            )
    return total
