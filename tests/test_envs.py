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
