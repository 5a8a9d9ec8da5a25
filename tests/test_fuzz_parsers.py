"""Property-based fuzzing of every parser of outside input: manifests, recipes and --set, model
configs, scorer files, method overrides, results.csv. Random and mutated inputs may be refused,
but only with the project's own one-line errors, and nothing is written outside the given folder."""

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scvae.checkpoint import CheckpointError
from segtool.errors import SegtoolError
from segtool.training.data import TrainingDataError
from segtool.training.recipe import RecipeError

FUZZ = settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                       HealthCheck.too_slow])
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10 ** 12, 10 ** 12), st.floats(allow_nan=True),
                    st.text(max_size=20))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=12)


def one_line(exc: Exception) -> None:
    assert str(exc) and "\n" not in str(exc).strip()


MANIFEST_KEYS = ["name", "title", "homepage", "licence", "citation", "protocol", "files", "layout", "split", "aliases",
                 "eval_dataset", "notes", "zzz"]
FILE_ENTRY = st.fixed_dictionaries({}, optional={"name": values | st.sampled_from(["../x", "/etc/passwd", "a/../../b",
                                                                                   "ok.txt", "C:/x"]),
                                                 "sha256": values, "md5": values, "size": values, "extract": values,
                                                 "url": st.none()})


@FUZZ
@given(base=st.dictionaries(st.sampled_from(MANIFEST_KEYS), values, max_size=10),
       files=st.lists(FILE_ENTRY, max_size=3),
       layout=st.lists(st.dictionaries(st.sampled_from(["path", "count", "pattern", "x"]), values, max_size=3), max_size=3))
def test_manifests(tmp_path_factory, base, files, layout):
    from segtool.data.manifests import parse_manifest
    from segtool.data.verify import verify

    root = tmp_path_factory.mktemp("root") / "data"
    root.mkdir()
    before = set(root.parent.parent.rglob("*"))
    data = {"name": "m", "title": "t", "homepage": "h", "licence": "l", "citation": "c", "protocol": "p", **base}
    data.setdefault("files", files)
    data.setdefault("layout", layout)
    try:
        manifest = parse_manifest(data, "fuzz.yaml")
        verify(manifest, root)
    except SegtoolError as exc:
        one_line(exc)
    assert {p for p in set(root.parent.parent.rglob("*")) - before if not str(p).startswith(str(root.parent))} == set()


@FUZZ
@given(overrides=st.lists(st.text(max_size=30) | st.sampled_from(
    ["train.lr=4e-5", "model.d=2.5", "model=abc", "train.resolution=12", "data.holdout=-1", "model.num_atoms=1e12",
     "train.betas=[2, 3]", "train.grad_clip=.nan", "model.channel_mult=[1, 2]", "data.crop_scale=[0.9, 0.1]"]),
    max_size=4))
def test_recipe_overrides(overrides):
    from segtool.training.recipe import load_recipe

    try:
        load_recipe("small-cpu", overrides)
    except (RecipeError, TrainingDataError) as exc:
        one_line(exc)


@FUZZ
@given(text=st.text(max_size=200) | st.builds(lambda d: "model:\n" + "\n".join(f"  {k}: {v}" for k, v in d.items()),
                                            st.dictionaries(st.sampled_from(["d", "base_channels", "num_atoms", "code_dim",
                                                                             "lista_steps", "alpha", "preset"]),
                                                            st.text(max_size=8), max_size=4)))
def test_recipe_files(tmp_path_factory, text):
    from segtool.training.recipe import load_recipe

    path = tmp_path_factory.mktemp("recipe") / "r.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass") if text.isprintable() else path.write_bytes(
        text.encode("utf-8", "replace"))
    try:
        load_recipe(str(path))
    except (RecipeError, TrainingDataError) as exc:
        one_line(exc)


@FUZZ
@given(config=st.dictionaries(st.sampled_from(["d", "base_channels", "max_channels", "num_atoms", "code_dim",
                                               "lista_steps", "lista_mode", "alpha", "channel_mult", "dropout", "x"]),
                              values, max_size=6) | values)
def test_model_configs(config):
    from scvae.checkpoint import _config_from_json

    try:
        _config_from_json(json.dumps(config), Path("config.json"))
    except CheckpointError as exc:
        one_line(exc)


@FUZZ
@given(data=st.dictionaries(st.sampled_from(["cues", "mean", "scale", "coef", "intercept", "provenance", "x"]), values,
                            max_size=7) | values)
def test_scorer_files(tmp_path_factory, data):
    from segtool.pipeline.foreground.scorer import load_scorer

    path = tmp_path_factory.mktemp("scorer") / "s.json"
    path.write_text(json.dumps(data))
    try:
        load_scorer(str(path))
    except SegtoolError as exc:
        one_line(exc)


@FUZZ
@given(name=st.sampled_from(["scvae", "colour-pipeline", "colour", "grabcut", "ellipse", "rbd", "nope"]),
       items=st.lists(st.tuples(st.sampled_from(["k", "rule", "threshold", "min_part", "n_init", "consensus", "refine",
                                                 "grid", "iterations", "inset", "scale", "n_segments", "fill_holes",
                                                 "colour_weight", "x"]),
                                st.text(max_size=8) | st.sampled_from(["2.5", "-1", "1e9", ".nan", "[2,abc]", "true"])),
                      max_size=3))
def test_method_overrides(name, items):
    from segtool.pipeline.registry import build_segmenter, parse_method

    text = name + ("[" + ",".join(f"{k}={v}" for k, v in items) + "]" if items else "")
    try:
        build_segmenter(parse_method(text), extractor_factory=lambda: None)
    except SegtoolError as exc:
        one_line(exc)


@FUZZ
@given(rows=st.lists(st.lists(st.text(max_size=6) | st.sampled_from(["nan", "inf", "-1", "0.5", "True", "\x00"]),
                              min_size=1, max_size=14), max_size=5),
       raw=st.binary(max_size=200))
def test_results_files(tmp_path_factory, rows, raw):
    from segtool.evaluation.results import RESULT_FIELDS, read_results

    folder = tmp_path_factory.mktemp("results")
    for content in (",".join(RESULT_FIELDS) + "\n" + "\n".join(",".join(r) for r in rows) + "\n", raw):
        path = folder / "results.csv"
        path.write_bytes(content.encode("utf-8", "surrogatepass") if isinstance(content, str) else content)
        try:
            read_results(path)
        except SegtoolError as exc:
            one_line(exc)
