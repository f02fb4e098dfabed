"""A GEO-shaped folder tree (series/GSEnnn/GSE781/matrix/...) from real fixtures plus generated files.

Real NCBI files are in standins/fixtures/geo/ (from the GEOparse and GEOquery test data). The files built
here copy the structure of the real files named in each builder's docstring: their header lines,
quoting, repeated keys, empty cells and encodings; only the sizes and values are made up.
"""

from __future__ import annotations

import gzip
import random
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "geo"


def quoted(cells) -> str:
    return "\t".join(f'"{c}"' for c in cells)


def matrix_text(
    series_id: str, platform: str, samples: list[str], probes: int, seed: int = 1, platforms: list[str] | None = None
) -> str:
    """A series matrix as NCBI serves it (mirrors series/GSEnnn/GSE781/matrix/GSE781-GPL96_series_matrix.txt.gz).

    Quoted cells, repeated `!Series_summary` and `!Sample_characteristics_ch1` lines, an empty
    characteristics cell, a blank line between the series and sample blocks, `null` and empty values.
    """
    rng = random.Random(seed)
    n = len(samples)
    lines = [
        f'!Series_title\t"Renal cell carcinoma vs normal kidney ({platform})"',
        f'!Series_geo_accession\t"{series_id}"',
        '!Series_status\t"Public on Nov 25 2003"',
        '!Series_submission_date\t"Oct 20 2003"',
        '!Series_last_update_date\t"Mar 25 2019"',
        '!Series_pubmed_id\t"14641932"',
        '!Series_summary\t"Tumor and normal kidney samples, Affymetrix arrays."',
        '!Series_summary\t"Keywords: disease state analysis"',
        '!Series_overall_design\t"Paired samples"',
        '!Series_type\t"Expression profiling by array"',
        '!Series_contributor\t"Marc,E.,Lenburg"',
        f'!Series_sample_id\t"{" ".join(samples)} "',
        f'!Series_platform_id\t"{" ".join(platforms or [platform])}"',
        f'!Series_supplementary_file\t"ftp://ftp.ncbi.nlm.nih.gov/geo/series/GSEnnn/{series_id}/suppl/{series_id}_RAW.tar"',
        '!Series_platform_taxid\t"9606"',
        '!Series_sample_taxid\t"9606"',
        "",
        "!Sample_title\t" + quoted(f"Kidney sample {i}" for i in range(n)),
        "!Sample_geo_accession\t" + quoted(samples),
        "!Sample_status\t" + quoted(["Public on Nov 25 2003"] * n),
        "!Sample_submission_date\t" + quoted(["Oct 20 2003"] * n),
        "!Sample_type\t" + quoted(["RNA"] * n),
        "!Sample_channel_count\t" + quoted(["1"] * n),
        "!Sample_source_name_ch1\t" + quoted(["Trizol isolation of total RNA"] * n),
        "!Sample_organism_ch1\t" + quoted(["Homo sapiens"] * n),
        "!Sample_characteristics_ch1\t" + quoted(f"tissue: {'tumor' if i % 2 else 'normal'}" for i in range(n)),
        "!Sample_characteristics_ch1\t" + quoted(f"age: {40 + i}" if i else "" for i in range(n)),
        "!Sample_characteristics_ch1\t" + quoted(["grade: 3"] * n),
        "!Sample_molecule_ch1\t" + quoted(["total RNA"] * n),
        "!Sample_platform_id\t" + quoted([platform] * n),
        "!Sample_supplementary_file\t"
        + quoted(
            f"ftp://ftp.ncbi.nlm.nih.gov/geo/samples/GSM{s[3:-3]}nnn/{s}/suppl/{s}.CEL.gz" if i else "NONE"
            for i, s in enumerate(samples)
        ),
        "!Sample_data_row_count\t" + quoted([str(probes)] * n),
        "!series_matrix_table_begin",
        '"ID_REF"\t' + quoted(samples),
    ]
    for p in range(probes):
        cells = [
            "null" if rng.random() < 0.02 else "" if rng.random() < 0.02 else f"{rng.uniform(5, 5000):.3f}"
            for _ in samples
        ]
        lines.append(f'"{p + 1000}_at"\t' + "\t".join(cells))
    lines.append("!series_matrix_table_end")
    return "\n".join(lines) + "\n"


def gds_text(dataset_id: str, series_id: str, platform: str, samples: list[str], probes: int) -> str:
    """A GDS SOFT file (mirrors datasets/GDSnnn/GDS507/soft/GDS507.soft.gz): the DATABASE entity,
    the DATASET attributes, SUBSETs with comma-separated samples, then the DATASET again with
    `#` column descriptions and the `ID_REF, IDENTIFIER, GSM...` table with `null` values."""
    half = len(samples) // 2
    lines = [
        "^DATABASE = Geo",
        "!Database_name = Gene Expression Omnibus (GEO)",
        "!Database_institute = NCBI NLM NIH",
        "!Database_web_link = http://www.ncbi.nlm.nih.gov/geo",
        "!Database_email = geo@ncbi.nlm.nih.gov",
        f"^DATASET = {dataset_id}",
        f"!dataset_title = Renal clear cell carcinoma ({platform})",
        "!dataset_description = Comparison of tumor and normal kidney.",
        "!dataset_type = Expression profiling by array",
        "!dataset_pubmed_id = 14641932",
        f"!dataset_platform = {platform}",
        "!dataset_sample_organism = Homo sapiens",
        "!dataset_platform_organism = Homo sapiens",
        "!dataset_platform_technology_type = in situ oligonucleotide",
        f"!dataset_feature_count = {probes}",
        "!dataset_sample_type = RNA",
        "!dataset_channel_count = 1",
        f"!dataset_sample_count = {len(samples)}",
        "!dataset_value_type = count",
        f"!dataset_reference_series = {series_id}",
        "!dataset_update_date = Mar 04 2004",
        f"^SUBSET = {dataset_id}_1",
        f"!subset_dataset_id = {dataset_id}",
        "!subset_description = normal",
        f"!subset_sample_id = {','.join(samples[:half])}",
        "!subset_type = disease state",
        f"^SUBSET = {dataset_id}_2",
        f"!subset_dataset_id = {dataset_id}",
        "!subset_description = RCC",
        f"!subset_sample_id = {','.join(samples[half:])}",
        "!subset_type = disease state",
        f"^DATASET = {dataset_id}",
        "#ID_REF = Platform reference identifier",
        "#IDENTIFIER = identifier",
        *[f"#{s} = Value for {s}" for s in samples],
        "!dataset_table_begin",
        "ID_REF\tIDENTIFIER\t" + "\t".join(samples),
    ]
    for p in range(probes):
        values = ["null" if (p + i) % 7 == 0 else f"{p * 10 + i}.5" for i in range(len(samples))]
        lines.append(f"{p + 1000}_at\tGENE{p}\t" + "\t".join(values))
    lines.append("!dataset_table_end")
    return "\n".join(lines) + "\n"


ANNOT_COLUMNS = [
    ("ID", "ID from Platform data table"),
    ("Gene title", "Entrez Gene name"),
    ("Gene symbol", "Entrez Gene symbol"),
    ("Gene ID", "Entrez Gene identifier"),
    ("UniGene title", "Entrez UniGene name"),
    ("UniGene symbol", "Entrez UniGene symbol"),
    ("UniGene ID", "Entrez UniGene identifier"),
    ("Nucleotide Title", "Entrez Nucleotide title"),
    ("GI", "GenBank identifier"),
    ("GenBank Accession", "GenBank accession"),
    ("Platform_CLONEID", "CLONE_ID from Platform data table"),
    ("Platform_ORF", "ORF from Platform data table"),
    ("Platform_SPOTID", "SPOT_ID from Platform data table"),
    ("Chromosome location", "Entrez gene map location"),
    ("Chromosome annotation", "Entrez gene chromosome and location"),
    ("GO:Function", "Gene Ontology Function term"),
    ("GO:Process", "Gene Ontology Process term"),
    ("GO:Component", "Gene Ontology Component term"),
    ("GO:Function", "Gene Ontology Function identifier"),
    ("GO:Process", "Gene Ontology Process identifier"),
    ("GO:Component", "Gene Ontology Component identifier"),
]


def legacy_gds_text(dataset_id: str, series_id: str, platform: str, subsets: dict[str, list[str]], probes: int) -> str:
    """A GDS as GEO wrote them in 2002-2004 (the head of the real GDS100.soft.gz): lower-case
    `^dataset` and `^subset`, `!dataset_total_samples`, a date as 04/06/2003, then a second
    `^dataset` whose `#` column descriptions are followed by the table's header row, with no
    `!dataset_table_begin` and no end marker: the table runs to the end of the file."""
    samples = [s for members in subsets.values() for s in members]
    lines = ["^database", "!database_name = Gene Expression Omnibus (GEO)", "!database_institute = NCBI NLM NIH",
             f"^dataset = {dataset_id}", "!dataset_completeness = all",
             "!dataset_description = Time course of UV-responsive genes.", "!dataset_experiment_type = dual channel",
             f"!dataset_maximum_probes = {probes}", "!dataset_order = none", "!dataset_organism = Escherichia coli",
             f"!dataset_platform = {platform}", "!dataset_probe_type = nucleotide",
             f"!dataset_reference_series = {series_id}", "!dataset_title = UV exposure time course (ecoli_8.0)",
             f"!dataset_total_samples = {len(samples)}", "!dataset_update_date = 04/06/2003",
             "!dataset_value_type = log ratio"]  # fmt: skip
    for i, (description, members) in enumerate(subsets.items(), 1):
        lines += [f"^subset = {dataset_id}_{i}", f"!subset_dataset_id = {dataset_id}",
                  f"!subset_description = {description}", f"!subset_sample_id = {','.join(members)}",
                  "!subset_type = time"]  # fmt: skip
    lines += [f"^dataset = {dataset_id}", "#ID_REF = Platform reference identifier", "#IDENTIFIER = probe identifier"]
    lines += [f"#{s} = Value for {s}: lexA vs. wt" for s in samples]
    lines.append("\t".join(["ID_REF", "IDENTIFIER", *samples]))
    for p in range(1, probes + 1):
        values = [
            "null" if (p + j) % 7 == 0 else f"{((p * 31 + j * 17) % 400 - 200) / 100:g}" for j in range(len(samples))
        ]
        lines.append("\t".join([str(p), str(p), *values]))
    return "\n".join(lines) + "\n"


def sage_family_text(series_id: str, platform: str, tags: dict[str, dict[str, int]]) -> str:
    """A SAGE series' family SOFT (the head of the real GSE2122_family.soft.gz): a GPL11-like
    platform whose table is `TAG GI`, and sample tables `TAG COUNT TPM PERCENT`, no ID_REF/VALUE."""
    all_tags = sorted({tag for counts in tags.values() for tag in counts})
    lines = ["^DATABASE = GeoMiame", "!Database_name = Gene Expression Omnibus (GEO)", f"^SERIES = {series_id}",
             "!Series_title = Skeletal muscle of glucocorticoid deprived and treated mice by SAGE",
             f"!Series_geo_accession = {series_id}", "!Series_status = Public on Jan 06 2005",
             "!Series_submission_date = Jan 04 2005", "!Series_last_update_date = Mar 16 2012",
             "!Series_type = Expression profiling by SAGE"]  # fmt: skip
    lines += [f"!Series_sample_id = {sample}" for sample in tags]
    lines += [f"!Series_platform_id = {platform}", f"^PLATFORM = {platform}",
              "!Platform_title = SAGE:10:NlaIII:Mus musculus", f"!Platform_geo_accession = {platform}",
              "!Platform_technology = SAGE NlaIII", "!Platform_distribution = virtual",
              "!Platform_organism = Mus musculus", "#TAG = tag sequence", "#GI = Best GI",
              "!platform_table_begin", "TAG\tGI"]  # fmt: skip
    lines += [f"{tag}\t{40254348 + i}" for i, tag in enumerate(all_tags)] + ["!platform_table_end"]
    for sample, counts in tags.items():
        total = sum(counts.values())
        lines += [f"^SAMPLE = {sample}", "!Sample_title = SAGE of skeletal muscle of intact mice",
                  f"!Sample_geo_accession = {sample}", "!Sample_type = SAGE", "!Sample_anchor = NlaIII",
                  "!Sample_tag_length = 10", f"!Sample_tag_count = {total}", "!Sample_channel_count = 1",
                  "!Sample_source_name_ch1 = skeletal muscle (gastrocnemius)", "!Sample_organism_ch1 = Mus musculus",
                  f"!Sample_platform_id = {platform}", f"!Sample_series_id = {series_id}",
                  f"!Sample_data_row_count = {len(counts)}", "#TAG = ", "#COUNT = ", "#TPM = tags per million",
                  "#PERCENT = ", "!sample_table_begin", "TAG\tCOUNT\tTPM\tPERCENT"]  # fmt: skip
        lines += [f"{tag}\t{n}\t{n * 1e6 / total:.2f}\t{n * 100 / total:.4f}" for tag, n in sorted(counts.items())]
        lines.append("!sample_table_end")
    return "\n".join(lines) + "\n"


def annot_bytes(platform: str, probes: int) -> bytes:
    """A GPL annotation as NCBI serves it (mirrors platforms/GPLnnn/GPL97/annot/GPL97.annot.gz).

    No `^PLATFORM` line: `^Annotation`, `!Annotation_*` attributes, `#column = description` lines,
    then the table with each GO column name twice (terms, then ids), `///` between several values,
    AFFX control probes with empty cells, and Latin-1 bytes in a gene title.
    """
    lines = [
        "^Annotation",
        "!Annotation_date = Nov 26 2026",
        f"!Annotation_platform = {platform}",
        "!Annotation_platform_title = [HG-U133B] Affymetrix Human Genome U133B Array",
        "!Annotation_platform_organism = Homo sapiens",
        "!Annotation_platform_technology = in situ oligonucleotide",
        "!Annotation_series_count = 48",
        *[f"#{name} = {text}" for name, text in ANNOT_COLUMNS],
        "!platform_table_begin",
        "\t".join(name for name, _ in ANNOT_COLUMNS),
    ]
    for control in ("AFFX-BioB-3_at", "AFFX-HUMISGF3A/M97935_5_at"):
        lines.append(control + "\t" * (len(ANNOT_COLUMNS) - 1))
    for p in range(probes):
        title = "prot\u00e9ine kinase" if p == 1 else f"gene {p}"
        symbol = f"GENE{p}///GENE{p}P1" if p % 9 == 5 else f"GENE{p}"
        gene_id = f"{p + 1}///{p + 90001}" if p % 9 == 5 else str(p + 1)
        cells = [
            f"{p + 1000}_at",
            title,
            symbol,
            gene_id,
            "",
            "",
            "",  # UniGene columns: empty since UniGene was retired
            f"Homo sapiens gene {p} mRNA",
            "",
            f"AI{p + 100000}",
            "",
            "",
            "",
            f"{p % 22 + 1}q{p % 3 + 1}",
            f"Chromosome {p % 22 + 1}, NC_0000{p % 22 + 1:02d}.11 ({p * 1000}..{p * 1000 + 500})",
            "ATP binding///protein binding" if p % 2 else "ATP binding",
            "signaling",
            "" if p % 4 == 3 else "cytoplasm",
            "GO:0005524///GO:0005515" if p % 2 else "GO:0005524",
            "GO:0023052",
            "" if p % 4 == 3 else "GO:0005737",
        ]
        lines.append("\t".join(cells))
    lines.append("!platform_table_end")
    return ("\n".join(lines) + "\n").encode("latin-1")


def write_gz(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    return path


GSE781_GPL96 = [f"GSM118{i:02d}" for i in range(5, 11)]
GSE781_GPL97 = [f"GSM119{i:02d}" for i in range(5, 11)]


def build(root: Path) -> Path:
    """Write the tree under root/geo and return that folder."""
    geo = root / "geo"
    series = geo / "series" / "GSEnnn" / "GSE781"
    both = ["GPL96", "GPL97"]
    write_gz(
        series / "matrix" / "GSE781-GPL96_series_matrix.txt.gz",
        matrix_text("GSE781", "GPL96", GSE781_GPL96, 50, seed=1, platforms=both),
    )
    write_gz(
        series / "matrix" / "GSE781-GPL97_series_matrix.txt.gz",
        matrix_text("GSE781", "GPL97", GSE781_GPL97, 40, seed=2, platforms=both),
    )
    (series / "suppl").mkdir(parents=True)
    (series / "suppl" / "GSE781_RAW.tar").write_bytes(b"\0" * 10240)
    (series / "suppl" / "filelist.txt").write_text("#Archive/File\tName\n")
    write_gz(
        geo / "series" / "GSE2nnn" / "GSE2000" / "matrix" / "GSE2000_series_matrix.txt.gz",
        matrix_text("GSE2000", "GPL13112", ["GSM20001", "GSM20002"], 0),
    )  # sequencing: empty table
    counts = "gene_id\tsymbol\tGSM20001\tGSM20002\n" + "".join(
        f"ENSG{g:011d}\tG{g}\t{g * 3}\t{g * 5}\n" for g in range(25)
    )
    write_gz(geo / "series" / "GSE2nnn" / "GSE2000" / "suppl" / "GSE2000_counts.tsv.gz", counts)
    write_gz(
        geo / "series" / "GSE105nnn" / "GSE105845" / "soft" / "GSE105845_family.soft.gz",
        (FIXTURES / "GSE105845_family.soft").read_bytes(),
    )  # real file; no matrix folder
    write_gz(
        geo / "datasets" / "GDSnnn" / "GDS507" / "soft" / "GDS507.soft.gz",
        gds_text("GDS507", "GSE781", "GPL97", GSE781_GPL97, 30),
    )
    write_gz(geo / "platforms" / "GPLnnn" / "GPL97" / "annot" / "GPL97.annot.gz", annot_bytes("GPL97", 40))
    return geo


def serve_over_https(server, geo: Path) -> str:
    """Serve the tree under `geo` from `server` as NCBI serves GEO at https://ftp.ncbi.nlm.nih.gov/geo/:
    every file, and for every folder Apache's `Index of` page (a `<pre>` listing: an absolute
    Parent Directory link, relative links to subfolders and files, dates and rounded sizes).
    Returns the base URL."""
    import time

    for path in sorted(geo.rglob("*")):
        rel = "/geo/" + path.relative_to(geo).as_posix()
        if path.is_file():
            server.add(rel, path.read_bytes())
    for folder in [geo, *sorted(p for p in geo.rglob("*") if p.is_dir())]:
        rel = "/geo/" + (folder.relative_to(geo).as_posix() + "/" if folder != geo else "")
        rows = [f'<a href="{rel.rsplit("/", 2)[0]}/">Parent Directory</a>                             -   ']
        for child in sorted(folder.iterdir()):
            name = child.name + ("/" if child.is_dir() else "")
            stamp = time.strftime("%Y-%m-%d %H:%M", time.gmtime(child.stat().st_mtime))
            size = "-" if child.is_dir() else f"{max(1, child.stat().st_size // 1024)}K"
            rows.append(f'<a href="{name}">{name}</a>{" " * max(1, 24 - len(name))}{stamp}  {size:>4}   ')
        page = (
            f"<html>\n <head>\n  <title>Index of {rel.rstrip('/')}</title>\n </head>\n <body>\n"
            f"<h1>Index of {rel.rstrip('/')}</h1>\n<pre>Name                    Last modified      Size  <hr>"
            + "\n".join(rows)
            + "\n<hr></pre>\n</body></html>\n"
        )
        server.add(rel, page.encode())
    return server.url("/geo")
