"""One rule for "a shipped name or a path": scorers, recipes and dataset manifests.

Shipped files are package data (`segtool/scorers/`, and the repository's top-level `recipes/`
and `data_manifests/`, installed as `segtool.recipes` and `segtool.manifests`). A value with no
path separator and no file suffix is a shipped name and is looked up among them first (so
`scvae` names the shipped scorer even where a folder `scvae/` exists); anything else, or a name
that is not shipped, is a path. Models follow the same rule in `scvae.registry.resolve` (the
model library cannot import this one).

    text, source, shipped = read_resource("recipe", "imagenet", RecipeError)
"""

from __future__ import annotations

from pathlib import Path

KINDS = {  # kind -> (package holding the shipped files, their suffix, what a user calls one)
    "scorer": ("segtool.scorers", ".json", "cluster scorer"),
    "recipe": ("segtool.recipes", ".yaml", "recipe"),
    "manifest": ("segtool.manifests", ".yaml", "dataset manifest"),
}
PATH_SUFFIXES = (".json", ".yaml", ".yml")


def shipped_folder(kind: str):
    from importlib.resources import files

    return files(KINDS[kind][0])


def shipped_names(kind: str) -> list[str]:
    suffix = KINDS[kind][1]
    return sorted(p.name[: -len(suffix)] for p in shipped_folder(kind).iterdir() if p.name.endswith(suffix))


def shipped_path(kind: str, filename: str) -> Path | None:
    """A shipped file of `kind` by its file name (e.g. a split list beside the manifests), or None."""
    path = Path(str(shipped_folder(kind).joinpath(filename)))
    return path if path.is_file() else None


def is_shipped_name(text: str) -> bool:
    return "/" not in text and "\\" not in text and not text.lower().endswith(PATH_SUFFIXES)


def read_resource(kind: str, name_or_path: str, error: type[Exception]) -> tuple[str, str, bool]:
    """(text, source, shipped) of a shipped file by name or of a file by path; `error` with one line otherwise."""
    package, suffix, what = KINDS[kind]
    if is_shipped_name(name_or_path):
        shipped = shipped_path(kind, f"{name_or_path}{suffix}")
        if shipped is not None:
            return shipped.read_text(encoding="utf-8"), shipped.name, True
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        shipped = ", ".join(shipped_names(kind)) or "none"
        raise error(f"{what} {name_or_path!r}: not a file, and not a shipped {what} (shipped: {shipped})")
    try:
        return path.read_text(encoding="utf-8"), str(path), False
    except UnicodeDecodeError:
        raise error(f"{path}: not a text file (a {what} is UTF-8 {suffix[1:].upper()})") from None
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror or exc})") from None
