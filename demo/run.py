"""`make demo`: the real workflow, offline, on every source Omicslake has.

    .venv/bin/python demo/run.py

Starts local stand-ins on 127.0.0.1 (standins/servers.py): Zenodo's records API serving demo/zenodo/,
Kaggle's API serving demo/kaggle/ as a dataset version, SeaweedFS as an S3 server holding
demo/s3/; builds a small CELLxGENE census (standins/census.py). The HTTP tables (demo/data/) and the
GEO mirror (demo/geo/) are read in place through file: URLs. Then it writes config/demo.yaml with
the stand-ins' ports into results/demo/config.yaml, runs snakemake on it (one dataset,
http.broken_on_purpose, fails on purpose), prints `omicslake status`, one query joining three
sources, and writes the HTML report. The stand-ins stop on exit, also on Ctrl-C.

Exit 0 when every dataset loaded except the deliberately broken one, which must have failed.
Each run starts from an empty results/demo/ (the stand-ins' ports change every run).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DEMO = REPO / "demo"
OUT = Path("results/demo")  # relative to the repository, as in config/demo.yaml
CONFIG = OUT / "config.yaml"
REPORT = OUT / "report.html"
DELIBERATE = "http.broken_on_purpose"
KAGGLE_TOKEN = "KGAT_omicslake-demo-token"  # the local Kaggle stand-in's token; never sent elsewhere

# GEO series (tumour vs normal per gene, through the platform annotation), NCBI gene_info (HTTP)
# and Kaggle's drug table: the genes that differ most between tumour and normal kidney.
QUERY = """
WITH per_gene AS (
    SELECT p.gene_symbol AS symbol,
           avg(e.value) FILTER (WHERE c.value = 'normal') AS normal,
           avg(e.value) FILTER (WHERE c.value = 'tumor') AS tumour
    FROM lake.geo.expression e
    JOIN lake.geo.platform_probes p USING (platform_id, probe_id)
    JOIN lake.geo.sample_characteristics c ON c.sample_id = e.sample_id AND c.key = 'tissue'
    WHERE e.series_id = 'GSE781'
    GROUP BY p.gene_symbol
), drugs AS (
    SELECT symbol, string_agg(drug || ' (' || role || ')', ', ' ORDER BY drug) AS drugs
    FROM lake.kaggle.drug_targets GROUP BY symbol
)
SELECT symbol, g.chromosome AS chr, g.description, round(normal) AS normal, round(tumour) AS tumour,
       round(log2(tumour / normal), 2) AS log2_fold, coalesce(drugs, '') AS approved_drugs
FROM per_gene
JOIN lake.http.gene_info g USING (symbol)
LEFT JOIN drugs USING (symbol)
ORDER BY abs(log2_fold) DESC, symbol
LIMIT 8
"""


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def echo(line: str) -> None:
    print(line, end="", flush=True)


def start_servers(stack: contextlib.ExitStack) -> dict:
    """Start every stand-in (S3 in the background while the census builds); return the endpoints."""
    from standins.servers import HTTPServer, KaggleServer, S3Server, Zenodo

    s3: dict = {}

    def start_s3():
        try:
            s3["server"] = S3Server((OUT / "servers" / "s3").resolve())
        except Exception as e:  # reported below, in the main thread
            s3["error"] = e

    def stop_s3():
        starting.join()  # S3Server gives up after 60 s
        if "server" in s3:
            s3["server"].stop()

    starting = threading.Thread(target=start_s3, daemon=True)
    starting.start()
    stack.callback(stop_s3)  # also when what follows fails or is interrupted

    http = HTTPServer()
    stack.callback(http.stop)
    zenodo = Zenodo(http)
    files = {p.name: p.read_bytes() for p in sorted((DEMO / "zenodo").iterdir())}
    zenodo.publish(7810001, files, title="Renal cell carcinoma cohort: sample sheet")

    kaggle = KaggleServer(token=KAGGLE_TOKEN)
    stack.callback(kaggle.stop)
    files = {p.name: p.read_bytes() for p in sorted((DEMO / "kaggle").iterdir())}
    kaggle.publish("omicslake-demo/cancer-drug-targets", 1, files, title="Approved drugs and their gene targets")

    from standins.census import build_census

    warnings.filterwarnings("ignore", category=FutureWarning, module="anndata")  # of scanpy's old h5ad
    build_census(OUT / "census" / "soma")

    starting.join()
    if "error" in s3:
        raise s3["error"]
    for path in sorted((DEMO / "s3").rglob("*")):
        if path.is_file():
            s3["server"].put("private", path.relative_to(DEMO / "s3").as_posix(), path.read_bytes())
    print(f"Zenodo API   {zenodo.api}")
    print(f"Kaggle API   {kaggle.endpoint}")
    print(f"S3 server    {s3['server'].endpoint} (SeaweedFS)")
    print(f"census       {OUT / 'census' / 'soma'}")
    return {"zenodo": zenodo.api, "kaggle": kaggle.endpoint, "s3": s3["server"].endpoint}


def environment() -> dict:
    """The stand-ins' credentials, and nothing of the machine's own: no proxy for 127.0.0.1, no
    ~/.aws or ~/.kaggle."""
    from standins.servers import S3Server

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KAGGLE_"))}
    local = "127.0.0.1,localhost"
    return {
        **env,
        "KAGGLE_API_TOKEN": KAGGLE_TOKEN,
        "KAGGLE_CONFIG_DIR": str(OUT / "servers" / "kaggle"),
        "AWS_ACCESS_KEY_ID": S3Server.KEY_ID,
        "AWS_SECRET_ACCESS_KEY": S3Server.SECRET,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "NO_PROXY": local,
        "no_proxy": local,
        "PYTHONPATH": str(REPO),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",  # the venv's snakemake, weed
    }


def write_config(endpoints: dict) -> None:
    config = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    sources = config["sources"]
    sources["zenodo"]["api_url"] = endpoints["zenodo"]
    sources["kaggle"]["api_endpoint"] = endpoints["kaggle"]
    for entry in sources["s3"]:
        entry["endpoint_url"] = endpoints["s3"]
    header = "# config/demo.yaml with the ports of this run's stand-ins (demo/run.py)\n"
    CONFIG.write_text(header + yaml.safe_dump(config, sort_keys=False))


# Snakemake's scheduler chatter, left out of the console (the full log is in .snakemake/log/)
CHATTER = re.compile(
    r"Select jobs to execute|Execute \d+ jobs|Shell command: None|DAG of jobs will be updated|Updating checkpoint"
    r"|Rules claiming more threads|Conda environments: ignored|Assuming unrestricted|Provided resources|^\[\w{3} \w{3} "
    r"|Missing metadata for file .* non critical warning"
)


def snakemake(*args: str, show=print) -> int:
    """Run snakemake on the demo config; `show` each line of its output but the chatter."""
    command = [sys.executable, "-m", "snakemake", "--configfile", str(CONFIG), "--replace-workflow-config", *args]
    show("$ " + " ".join(["snakemake", *command[3:]]) + "\n")
    with subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as run:
        try:
            for line in run.stdout:
                if line.strip() and not CHATTER.search(line):
                    show(line)
        except BaseException:  # Ctrl-C (snakemake got it too) or SIGTERM: snakemake stops its jobs
            run.terminate()
            raise
    return run.returncode


def omicslake(*args: str) -> str:
    """`omicslake --configfile results/demo/config.yaml ARGS`, in this process; its output."""
    from omicslake.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(["--configfile", str(CONFIG), *args])
    return out.getvalue()


def check(returncode: int) -> list[str]:
    """What is wrong with the run (nothing: the deliberate failure only), from `status --json`."""
    status = json.loads(omicslake("status", "--json"))
    failed = {d["dataset"]: d["cause"] for d in status["datasets"] if d["state"] == "failed"}
    problems = [f"{name} failed: {cause}" for name, cause in failed.items() if name != DELIBERATE]
    unloaded = [d for d in status["datasets"] if d["state"] not in ("registered", "failed")]
    problems += [f"{d['dataset']} is {d['state']}" for d in unloaded]
    if DELIBERATE not in failed:
        problems.append(f"{DELIBERATE} did not fail")
    if status["lake_error"]:
        problems.append(f"the lake: {status['lake_error']}")
    if returncode not in (0, 1):
        problems.append(f"snakemake exited with {returncode}")
    return problems


def main() -> int:
    os.chdir(REPO)
    clock = time.monotonic()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the stand-ins on kill too
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    with contextlib.ExitStack() as servers:
        say("stand-ins on 127.0.0.1")
        endpoints = start_servers(servers)
        env = environment()
        os.environ.clear()
        os.environ.update(env)
        write_config(endpoints)
        say(f"the workflow on every source ({CONFIG}); {DELIBERATE} fails on purpose")
        returncode = snakemake("--cores", "2", "--keep-going", "--quiet", "rules", show=echo)
    # the lake needs none of the stand-ins: every table read below is registered Parquet on disk
    report: dict = {"lines": []}  # written meanwhile, on the other core; shown after the query
    writing = threading.Thread(
        target=lambda: report.update(code=snakemake("--report", str(REPORT), show=report["lines"].append))
    )
    writing.start()
    say("omicslake status")
    print(omicslake("status"), end="")
    problems = check(returncode)
    say("one query, three sources: GEO GSE781 + GPL97 annotation, NCBI gene_info (http), drug targets (kaggle)")
    try:
        print(omicslake("query", QUERY), end="")
    except Exception as e:
        problems.append(f"the query failed: {e}")
    say("the run report")
    writing.join()
    print("".join(report["lines"]), end="")
    if report.get("code") != 0:
        problems.append("snakemake --report failed")
    print(f"report: {REPO / REPORT}")
    if problems:
        say("the demo went wrong: " + "; ".join(problems))
        return 1
    say(f"done in {time.monotonic() - clock:.0f} s: every source loaded; {DELIBERATE} failed as intended")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C: snakemake got it too; the stand-ins have stopped (ExitStack)
        print("\ninterrupted: the stand-ins are stopped; results/demo/ holds what ran", file=sys.stderr)
        sys.exit(130)
