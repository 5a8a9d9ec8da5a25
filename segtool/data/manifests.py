"""Dataset manifests: where a benchmark comes from, its terms, its files and layout, its split.

The YAML files live in `data_manifests/` (installed as the package `segtool.manifests`).
`segtool.data.verify` checks a local copy against a manifest; `segtool.data.fetch` downloads
what has a public URL.

    manifest = load_manifest("flowers")
    fetch(manifest, "/data/flowers102")
    report = verify(manifest, "/data/flowers102")
    report.ok, report.problems
"""

from __future__ import annotations

from segtool.params import key_list

import re
from dataclasses import dataclass, fields

from segtool.data.readers import DatasetError



@dataclass(frozen=True)
class ManifestFile:
    """One file as published. `extract` marks an archive to unpack into the data root."""

    name: str
    url: str | None = None
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None      # some sources publish only an md5; better than nothing
    extract: bool = False


@dataclass(frozen=True)
class LayoutEntry:
    """A path that must exist in the data root; a trailing '/' means a folder.

    `count` is the number of files matching `pattern` (a glob relative to the folder).
    """

    path: str
    count: int | None = None
    pattern: str = "*"

    @property
    def is_dir(self) -> bool:
        return self.path.endswith("/")


@dataclass(frozen=True)
class SplitFile:
    """A split list: `shipped` inside segtool, or found in the data `root`."""

    name: str
    location: str = "shipped"
    sha256: str | None = None
    description: str = ""


@dataclass(frozen=True)
class Manifest:
    name: str
    title: str
    homepage: str
    licence: str
    citation: str
    files: tuple[ManifestFile, ...]
    layout: tuple[LayoutEntry, ...]
    split_definition: str
    split_files: tuple[SplitFile, ...]
    protocol: str
    eval_dataset: str | None = None      # the name `segtool eval` takes, when it is a benchmark
    aliases: tuple[str, ...] = ()
    notes: str | None = None
    source: str = ""                     # the YAML it was read from

    @property
    def names(self) -> tuple[str, ...]:
        extra = (self.eval_dataset,) if self.eval_dataset else ()
        return tuple(dict.fromkeys((self.name, *self.aliases, *extra)))

    @property
    def downloadable(self) -> bool:
        return any(f.url for f in self.files)


# ----------------------------------------------------------------------------- loading

def list_manifests() -> list[str]:
    from segtool.resources import shipped_names

    return shipped_names("manifest")


def _build(cls, data, where: str):
    if not isinstance(data, dict):
        raise DatasetError(f"{where}: expected a mapping, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise DatasetError(f"{where}: unknown field(s) {key_list(unknown)}")
    try:
        return cls(**data)
    except TypeError as exc:
        raise DatasetError(f"{where}: {exc}") from None


_HEX = re.compile(r"^[0-9a-fA-F]+$")
_DIGEST_LENGTHS = {"sha256": 64, "md5": 32}


def relative_path_problem(text) -> str | None:
    """Why `text` is not a safe path inside a data root, or None.

    The same rule archives get: no absolute paths (POSIX, UNC or drive letters), no `..`
    component, no NUL. A manifest is data from anywhere; it must never name a place outside
    the root it is applied to.
    """
    if not isinstance(text, str) or not text.strip():
        return "must be a non-empty relative path"
    if "\0" in text:
        return "must not contain a NUL character"
    if text.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", text) or text.startswith("~"):
        return f"must be relative to the data root, got the absolute path {text!r}"
    if ".." in re.split(r"[\\/]", text):
        return f"must stay inside the data root ('..' is not allowed), got {text!r}"
    return None


def _check_path(value, where: str) -> None:
    problem = relative_path_problem(value)
    if problem:
        raise DatasetError(f"{where} {problem}")


def _check_digest(value, where: str, kind: str) -> None:
    if value is None:
        return
    length = _DIGEST_LENGTHS[kind]
    if not isinstance(value, str):
        raise DatasetError(f"{where} must be a quoted string of {length} hex digits (YAML read an unquoted "
                           f"{type(value).__name__}: write {kind}: \"...\")")
    if len(value) != length or not _HEX.match(value):
        raise DatasetError(f"{where} must be {length} hex digits, got {value!r}")


def _check_whole(value, where: str, what: str) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise DatasetError(f"{where} must be {what} (a whole number >= 0) or null, got {value!r}")


def _check_text(value, where: str) -> None:
    if value is not None and not isinstance(value, str):
        raise DatasetError(f"{where} must be text, got {value!r}")


def _items(data: dict, key: str, where: str) -> list:
    value = data.pop(key, None)
    if value is None:
        return []
    if not isinstance(value, list):
        raise DatasetError(f"{where}: {key} must be a list, got {type(value).__name__}")
    return value


def parse_manifest(data: dict, source: str = "<manifest>") -> Manifest:
    """A Manifest from the YAML mapping; every wrong field is named with its file.

    Every value is checked here, before anything is read or written: paths must stay inside
    the data root, checksums are hex strings of the right length, counts are whole numbers.
    """
    if not isinstance(data, dict):
        raise DatasetError(f"{source}: a manifest must be a YAML mapping")
    data = dict(data)
    split = data.pop("split", None) or {}
    if not isinstance(split, dict):
        raise DatasetError(f"{source}: split: expected a mapping with definition and files")
    unknown_split = sorted(set(split) - {"definition", "files"})
    if unknown_split:
        raise DatasetError(f"{source}: split: unknown field(s) {key_list(unknown_split)}")
    required = ("name", "title", "homepage", "licence", "citation", "protocol")
    missing = [key for key in required if not data.get(key)]
    if missing:
        raise DatasetError(f"{source}: missing field(s) {', '.join(missing)}")
    for key in (*required, "eval_dataset", "notes"):
        _check_text(data.get(key), f"{source}: {key}")
    files_ = tuple(_build(ManifestFile, item, f"{source}: files[{i}]") for i, item in enumerate(_items(data, "files", source)))
    layout = tuple(_build(LayoutEntry, item, f"{source}: layout[{i}]") for i, item in enumerate(_items(data, "layout", source)))
    split_files = tuple(_build(SplitFile, item, f"{source}: split.files[{i}]")
                        for i, item in enumerate(_items(dict(split), "files", f"{source}: split")))
    for i, entry in enumerate(files_):
        where = f"{source}: files[{i}]"
        _check_path(entry.name, f"{where}.name")
        _check_text(entry.url, f"{where}.url")
        _check_whole(entry.size, f"{where}.size", "a number of bytes")
        _check_digest(entry.sha256, f"{where}.sha256", "sha256")
        _check_digest(entry.md5, f"{where}.md5", "md5")
        if not isinstance(entry.extract, bool):
            raise DatasetError(f"{where}.extract must be true or false")
    for i, entry in enumerate(layout):
        where = f"{source}: layout[{i}]"
        _check_path(entry.path, f"{where}.path")
        _check_path(entry.pattern, f"{where}.pattern")
        _check_whole(entry.count, f"{where}.count", "a file count")
    for i, split_file in enumerate(split_files):
        where = f"{source}: split.files[{i}]"
        _check_path(split_file.name, f"{where}.name")
        _check_digest(split_file.sha256, f"{where}.sha256", "sha256")
        _check_text(split_file.description, f"{where}.description")
        if split_file.location not in ("shipped", "root"):
            raise DatasetError(f"{where}.location must be shipped or root")
    aliases = data.get("aliases") or ()
    if not isinstance(aliases, (list, tuple)) or not all(isinstance(a, str) and a for a in aliases):
        raise DatasetError(f"{source}: aliases must be a list of names, got {aliases!r}")
    data["aliases"] = tuple(aliases)
    return _build(Manifest, dict(data, files=files_, layout=layout, split_files=split_files,
                                 split_definition=str(split.get("definition", "")).strip(), source=source), source)


def load_manifest(name: str) -> Manifest:
    """A shipped manifest by name or alias (flowers102 | flowers, cub200 | cub, ...) or a YAML path."""
    import yaml

    from segtool.yamltext import load_yaml

    from segtool.resources import is_shipped_name, read_resource

    if not is_shipped_name(name):
        text, source, _ = read_resource("manifest", name, DatasetError)
        try:
            return parse_manifest(load_yaml(text), source)
        except yaml.YAMLError as exc:
            raise DatasetError(f"{source}: not valid YAML ({' '.join(str(exc).split())})") from None
    for entry_name in list_manifests():  # a name or an alias (the aliases live inside the manifests)
        text, source, _ = read_resource("manifest", entry_name, DatasetError)
        manifest = parse_manifest(load_yaml(text), source)
        if name.lower() in manifest.names:
            return manifest
    raise DatasetError(f"unknown dataset {name!r}: known manifests are {', '.join(list_manifests())}")


def require_relative_paths(manifest: Manifest) -> None:
    """Manifests built in code skip `parse_manifest`; the path rule holds for them too."""
    named = [(f"files {entry.name!r}", entry.name) for entry in manifest.files]
    named += [(f"layout {entry.path!r}", entry.path) for entry in manifest.layout]
    named += [(f"layout pattern {entry.pattern!r}", entry.pattern) for entry in manifest.layout]
    named += [(f"split file {entry.name!r}", entry.name) for entry in manifest.split_files]
    for where, value in named:
        _check_path(value, f"{manifest.source or manifest.name}: {where}")
