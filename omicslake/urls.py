"""URLs in the config and in errors: never with a login (a load stores its config entry; logs and
the lake show URLs), and the one naming rule for where a host's login comes from instead:
`DOWNLOAD__<HOST>__USERNAME` / `…__PASSWORD` (or `[download.<host>]` in .dlt/secrets.toml)."""

from __future__ import annotations

import re
from urllib.parse import urlparse, urlunparse

from omicslake.errors import RERUN, ConfigError


def login_key(url: str | None) -> str:
    """The host as login settings name it: lower case, every other character `_`."""
    return re.sub(r"[^a-z0-9]", "_", (urlparse(url or "").hostname or "").lower())


def login_variables(url: str | None) -> str:
    host = login_key(url).upper() or "<HOST>"
    return f"DOWNLOAD__{host}__USERNAME and DOWNLOAD__{host}__PASSWORD"


def check_url(key: str, url: str) -> None:
    """No login in a config URL: the config entry is stored with every load (manifest, receipt)."""
    parsed = urlparse(url)
    if parsed.username or parsed.password:
        raise ConfigError(
            f"config key {key}: a user or password in the URL would be stored with every load",
            f"set {login_variables(url)} (or .dlt/secrets.toml) instead",
        )


def public(url: str) -> str:
    """The URL without `user:password@`: what logs, manifests and the lake may hold."""
    parsed = urlparse(url)
    if not (parsed.username or parsed.password):
        return url
    host = parsed.hostname + (f":{parsed.port}" if parsed.port else "")
    return urlunparse(parsed._replace(netloc=host))


def http_fix(status: int, url: str | None = None, what: str = "the URL") -> str:
    """What to do about an HTTP error status from `url`."""
    if status == 401:
        return f"the server wants a login: set {login_variables(url)} (or .dlt/secrets.toml, ~/.netrc)"
    if status == 403:
        return f"access refused: check the login in {login_variables(url)} and your rights to the file"
    if status in (404, 410):
        return f"check {what} in the config (a typo, or removed upstream?), or remove the entry"
    if status == 429:
        return "the server limits requests: wait, then run again (or lower downloads_<source> with --resources)"
    if status >= 500:
        return f"the server failed: {RERUN} later"
    return f"check {what} in the config, then run again"
