"""Reading the catalog and the policy files (configuration loading, called by the jobs;
the engine itself never reads a file). Every error names the file, the key and the reason."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from vipsync.eligibility.catalog import CATEGORIES, Catalog, KeywordRule, SkuPattern, normalize_sku
from vipsync.eligibility.policy import Policy, PolicySet
from vipsync.errors import ConfigError, PolicyError

__all__ = ["load_catalog", "load_policies", "load_policy", "parse_catalog", "parse_policy"]


def _read_toml(path: Path, error: type[ConfigError], what: str) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{what} {path} is not valid TOML: {exc}") from None


def load_catalog(path: Path | str) -> Catalog:
    path = Path(path)
    return parse_catalog(_read_toml(path, ConfigError, "catalog file"), source=str(path))


def _category(value: Any, where: str) -> str:
    if value not in CATEGORIES or value == "unknown":
        raise ConfigError(f"{where}: unknown category {value!r} (one of {', '.join(CATEGORIES[:-1])})")
    return str(value)


def parse_catalog(doc: dict[str, Any], *, source: str = "<catalog>") -> Catalog:
    """Build a Catalog from a parsed TOML document."""
    allowed = {"version", "skus", "patterns", "keywords"}
    for key in doc:
        if key not in allowed:
            raise ConfigError(f"{source}: {key}: unknown key (allowed: {', '.join(sorted(allowed))})")
    version = doc.get("version")
    if not isinstance(version, str) or not version:
        raise ConfigError(f"{source}: version: required, a non-empty string")
    skus = doc.get("skus", {})
    if not isinstance(skus, dict):
        raise ConfigError(f"{source}: skus: must be a table of SKU = category")
    exact: dict[str, str] = {}
    for sku, cat in skus.items():
        key = normalize_sku(sku)
        if key in exact:
            raise ConfigError(f"{source}: skus.{sku}: listed twice")
        exact[key] = _category(cat, f"{source}: skus.{sku}")
    patterns = []
    for i, entry in enumerate(doc.get("patterns", [])):
        where = f"{source}: patterns[{i}]"
        if not isinstance(entry, dict) or set(entry) != {"regex", "category"}:
            raise ConfigError(f"{where}: must be a table with exactly regex and category")
        try:
            regex = re.compile(entry["regex"])
        except (re.error, TypeError) as exc:
            raise ConfigError(f"{where}.regex: not a valid regular expression: {exc}") from None
        if not regex.pattern.startswith("^") or not regex.pattern.endswith("$"):
            raise ConfigError(f"{where}.regex: must be anchored (^...$): a prefix alone never decides")
        patterns.append(SkuPattern(regex, _category(entry["category"], f"{where}.category")))
    keywords = []
    for i, entry in enumerate(doc.get("keywords", [])):
        where = f"{source}: keywords[{i}]"
        if (
            not isinstance(entry, dict)
            or not {"all", "category"} <= set(entry)
            or set(entry) - {"all", "none", "category"}
        ):
            raise ConfigError(f"{where}: must be a table with all, category and optionally none")
        words = entry["all"]
        none = entry.get("none", [])
        for name, value in (("all", words), ("none", none)):
            if not isinstance(value, list) or not all(isinstance(w, str) and w.strip() for w in value):
                raise ConfigError(f"{where}.{name}: must be a list of non-empty phrases")
        if not words:
            raise ConfigError(f"{where}.all: needs at least one phrase")
        keywords.append(
            KeywordRule(tuple(words), _category(entry["category"], f"{where}.category"), tuple(none))
        )
    return Catalog(version=version, exact=exact, patterns=tuple(patterns), keywords=tuple(keywords))


def parse_policy(doc: dict[str, Any], *, source: str = "<policy>") -> Policy:
    """Validate one parsed policy document."""
    try:
        return Policy.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "(file)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            msg = "required key is missing"
        elif err["type"] == "extra_forbidden":
            msg = "unknown key"
        raise PolicyError(f"{source}: {loc}: {msg}") from None


def load_policy(path: Path | str) -> Policy:
    path = Path(path)
    return parse_policy(_read_toml(path, PolicyError, "policy file"), source=str(path))


def load_policies(directory: Path | str) -> PolicySet:
    """Every ``*.toml`` in the directory; at least one must be enabled."""
    directory = Path(directory)
    if not directory.is_dir():
        raise PolicyError(f"policies directory {directory} does not exist (VIPSYNC_POLICIES_DIR)")
    policies = [load_policy(p) for p in sorted(directory.glob("*.toml"))]
    if not any(p.enabled for p in policies):
        raise PolicyError(f"policies directory {directory}: no enabled policy version")
    seen: dict[str, Path] = {}
    for p, path in zip(policies, sorted(directory.glob("*.toml")), strict=True):
        if p.version in seen:
            raise PolicyError(f"{path}: version: {p.version!r} is already defined in {seen[p.version]}")
        seen[p.version] = path
    return PolicySet(tuple(policies))
