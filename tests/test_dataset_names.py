"""One spelling per dataset: the short name (cub) and the manifest name (cub200) work everywhere,
errors that need data name the commands that get it, and `data fetch` has a default root."""

import pytest
from typer.testing import CliRunner

from segtool.cli.data import data_app
from segtool.data.manifests import list_manifests, load_manifest
from segtool.data.readers import MANIFEST_NAMES, benchmark_name

from conftest import run_cli


def test_every_benchmark_manifest_name_and_alias_is_an_eval_name():
    benchmarks = [load_manifest(name) for name in list_manifests() if load_manifest(name).eval_dataset]
    assert sorted(m.eval_dataset for m in benchmarks) == sorted(MANIFEST_NAMES)
    for manifest in benchmarks:
        assert MANIFEST_NAMES[manifest.eval_dataset] == manifest.name
        for name in manifest.names:
            assert benchmark_name(name) == manifest.eval_dataset, name
            assert benchmark_name(name.upper()) == manifest.eval_dataset
    assert benchmark_name("imagenet") is None and benchmark_name("cub2000") is None


@pytest.mark.parametrize("name", ["cub", "cub200", "CUB200"])
def test_eval_without_data_names_the_commands_that_get_it(name, capsys):
    code, _, err = run_cli(capsys, "eval", name)
    assert code == 2, err
    (line,) = err.strip().splitlines()
    assert "unknown dataset" not in line
    assert "segtool data fetch cub" in line and "segtool data info cub" in line and "--data-root" in line


def test_eval_finds_the_fetched_copy_and_points_at_data_info(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SEGTOOL_DATA", str(tmp_path))
    (tmp_path / "cub200").mkdir()   # where `data fetch cub` unpacks; empty here
    code, _, err = run_cli(capsys, "eval", "cub200", "--out", tmp_path / "out")
    assert code == 1, err
    (line,) = err.strip().splitlines()
    assert str(tmp_path / "cub200") in line and "not a CUB-200-2011 layout" in line
    assert "segtool data info cub" in line


def test_data_fetch_and_verify_default_to_segtool_data(tmp_path, monkeypatch):
    import segtool.data.fetch
    import segtool.data.verify

    roots = []

    class Report:
        notes, problems, checked, ok, manifest = [], [], [], True, "cub200"

    def fake_fetch(manifest, root, progress=None):
        roots.append(("fetch", manifest.name, root))
        return []

    def fake_verify(manifest, root, progress=None):
        roots.append(("verify", manifest.name, root))
        Report.root = root
        return Report()

    monkeypatch.setattr(segtool.data.fetch, "fetch", fake_fetch)
    monkeypatch.setattr(segtool.data.verify, "verify", fake_verify)
    monkeypatch.setenv("SEGTOOL_DATA", str(tmp_path / "data"))
    result = CliRunner().invoke(data_app, ["fetch", "cub", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert roots == [("fetch", "cub200", tmp_path / "data" / "cub200"), ("verify", "cub200", tmp_path / "data" / "cub200")]
    monkeypatch.delenv("SEGTOOL_DATA")
    monkeypatch.setenv("SEGTOOL_CACHE", str(tmp_path / "cache"))
    result = CliRunner().invoke(data_app, ["verify", "flowers", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert roots[-1] == ("verify", "flowers102", tmp_path / "cache" / "data" / "flowers102")
