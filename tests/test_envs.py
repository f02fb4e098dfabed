"""conda env files pin exactly the versions in requirements.lock (what the tests ran)."""

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonical(name)] = version.strip()
    return pins


def test_lock_pins_every_package_exactly():
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[^=\s]+", line), line


def test_lock_has_the_pinned_duckdb_stack():
    pins = lock()
    assert pins["duckdb"] == "1.5.5"
    assert pins["duckdb-extension-ducklake"] == "1.5.5"
    assert pins["snakemake"].startswith("9.")


def test_env_files_match_lock():
    pins = lock()
    env_files = sorted((REPO / "envs").glob("*.yaml"))
    assert env_files
    for env_file in env_files:
        env = yaml.safe_load(env_file.read_text())
        for dep in env["dependencies"]:
            entries = dep["pip"] if isinstance(dep, dict) else []
            for entry in entries:
                name, _, version = entry.partition("==")
                assert version, f"{env_file.name}: {entry} is not pinned with =="
                assert pins.get(canonical(name)) == version, (
                    f"{env_file.name}: {entry} != lock {pins.get(canonical(name))}"
                )
            if isinstance(dep, str) and dep.startswith("python"):
                assert dep == "python=3.11", f"{env_file.name}: {dep}"


def test_every_rule_that_runs_code_has_a_conda_env():
    for smk in (REPO / "rules").glob("*.smk"):
        text = smk.read_text()
        rules = re.split(r"^rule ", text, flags=re.M)[1:]
        for rule in rules:
            if "script:" in rule or "shell:" in rule:
                assert "conda:" in rule, f"{smk.name}: rule {rule.split(':')[0]} has no conda env"


def test_every_dependency_and_extra_of_pyproject_is_in_the_lock_within_its_range():
    """What the sources import is declared: the base dependencies and one extra per source
    library (`kaggle`, `s3`, `cellxgene`, `report`), and what builds the docs (`docs`), each
    satisfied by the version the tests ran."""
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    checked = ("kaggle", "s3", "cellxgene", "report", "docs")
    assert set(checked) <= extras.keys()
    pins = lock()
    for spec in project["dependencies"] + [r for name in checked for r in extras[name]]:
        requirement = Requirement(spec)
        assert canonical(requirement.name) in pins, f"{requirement.name} is not in requirements.lock"
        assert requirement.specifier.contains(pins[canonical(requirement.name)]), (
            spec,
            pins[canonical(requirement.name)],
        )


def test_a_missing_source_library_is_one_line_naming_its_extra(tmp_path):
    """The s3 source without s3fs installed (made unimportable): one line, the extra to install."""
    import os
    import subprocess
    import sys

    tpm = {"name": "tpm", "bucket_url": "s3://lab/tpm/", "endpoint_url": "http://127.0.0.1:9"}
    config = {"lake": {"catalog": str(tmp_path / "lake.ducklake"), "data_path": str(tmp_path / "data")},
              "staging": str(tmp_path / "staging"), "sources": {"s3": [tpm]}}  # fmt: skip
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    without_s3fs = """
import runpy, sys
class Missing:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "s3fs":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Missing())
sys.argv = ["omicslake", *sys.argv[1:]]
runpy.run_module("omicslake.cli", run_name="__main__")
"""
    run = subprocess.run(
        [sys.executable, "-c", without_s3fs, "--config", str(tmp_path / "config.yaml"), "ingest", "s3.tpm"],
        capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert run.returncode == 1, run.stderr
    lines = [line for line in run.stderr.splitlines() if line.startswith("omicslake: ")]
    assert lines == [
        "omicslake: s3.tpm: s3fs is not installed: it comes with omicslake[s3]; "
        "fix: pip install 'omicslake[s3]' in the workflow's Python (or run with --sdm conda: envs/)"
    ], run.stderr
    assert "Traceback" not in run.stderr
