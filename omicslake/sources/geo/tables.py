"""The tables of schema `geo` and their column types. Every GEO load declares all of them, so each
exists after the first load, even with no rows."""

from __future__ import annotations

import pyarrow as pa

from omicslake.reshape import CODED

TEXT, TEXTS, DATE, INT, VALUE = pa.string(), pa.list_(pa.string()), pa.date32(), pa.int64(), pa.float64()

TABLES = {
    "series": pa.schema(
        [
            ("series_id", TEXT),
            ("title", TEXT),
            ("summary", TEXT),
            ("overall_design", TEXT),
            ("type", TEXT),
            ("status", TEXT),
            ("submission_date", DATE),
            ("last_update_date", DATE),
            ("pubmed_ids", TEXTS),
            ("platform_ids", TEXTS),
            ("sample_ids", TEXTS),
            ("contributors", TEXTS),
            ("contact_name", TEXT),
            ("contact_institute", TEXT),
            ("contact_country", TEXT),
            ("relations", TEXTS),
            ("attributes", TEXT),
        ]
    ),
    "samples": pa.schema(
        [
            ("series_id", TEXT),
            ("sample_id", TEXT),
            ("title", TEXT),
            ("source_name", TEXT),
            ("organism", TEXT),
            ("platform_id", TEXT),
            ("molecule", TEXT),
            ("type", TEXT),
            ("description", TEXT),
            ("channel_count", INT),
            ("data_row_count", INT),
            ("submission_date", DATE),
            ("last_update_date", DATE),
            ("attributes", TEXT),
        ]
    ),
    "sample_characteristics": pa.schema(
        [("series_id", TEXT), ("sample_id", TEXT), ("channel", INT), ("key", TEXT), ("value", TEXT)]
    ),
    # one value per (series, platform, sample, probe), from series matrices (or the family SOFT)
    "expression": pa.schema(
        [("series_id", CODED), ("platform_id", CODED), ("sample_id", CODED), ("probe_id", CODED), ("value", VALUE)]
    ),
    # level 'series' (header lines and the suppl/ folder listing, with sizes) or 'sample'
    "supplementary_files": pa.schema(
        [
            ("series_id", TEXT),
            ("level", TEXT),
            ("sample_id", TEXT),
            ("url", TEXT),
            ("file_name", TEXT),
            ("size", INT),
        ]
    ),
    "supplementary_values": pa.schema(
        [
            ("series_id", CODED),
            ("file_name", CODED),
            ("feature_id", CODED),
            ("column_name", CODED),
            ("value", VALUE),
        ]
    ),
    "datasets": pa.schema(
        [
            ("dataset_id", TEXT),
            ("title", TEXT),
            ("description", TEXT),
            ("platform_id", TEXT),
            ("series_id", TEXT),
            ("value_type", TEXT),
            ("sample_organism", TEXT),
            ("sample_type", TEXT),
            ("sample_count", INT),
            ("update_date", DATE),
            ("pubmed_ids", TEXTS),
            ("attributes", TEXT),
        ]
    ),
    "dataset_subsets": pa.schema(
        [("dataset_id", TEXT), ("subset_id", TEXT), ("type", TEXT), ("description", TEXT), ("sample_id", TEXT)]
    ),
    # a GDS's values: its own curated table, apart from the series matrix values in `expression`
    "dataset_expression": pa.schema(
        [
            ("dataset_id", CODED),
            ("series_id", CODED),
            ("platform_id", CODED),
            ("sample_id", CODED),
            ("probe_id", CODED),
            ("identifier", CODED),
            ("value", VALUE),
        ]
    ),
    # the annotation's own columns follow these two (gene_symbol, go_function, go_function_2, ...)
    "platform_probes": pa.schema([("platform_id", TEXT), ("probe_id", TEXT)]),
}
