"""Dataset manifests: the shipped YAMLs, verify, fetch from a loopback server, and `segtool data`."""

import hashlib
import http.server
import io
import socket
import tarfile
import threading
import zipfile
from functools import partial
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from segtool.cli.data import data_app
from segtool.data.fetch import extract_archive, fetch
from segtool.data.manifests import Manifest, list_manifests, load_manifest, parse_manifest
from segtool.data.verify import verify
from segtool.data.readers import DatasetError, shipped_file

SHIPPED = ["cub200", "ffhq", "flowers102", "imagenet", "isic2016"]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ----------------------------------------------------------------------------- shipped manifests

def test_shipped_manifests_load_by_name_and_alias():
    assert list_manifests() == SHIPPED
    for name in SHIPPED:
        manifest = load_manifest(name)
        assert manifest.name == name and manifest.licence and manifest.citation and manifest.protocol
        assert manifest.layout and manifest.files
    for alias, name in (("flowers", "flowers102"), ("cub", "cub200"), ("isic", "isic2016"), ("CUB", "cub200")):
        assert load_manifest(alias).name == name
    assert [load_manifest(n).eval_dataset for n in ("flowers", "cub", "isic")] == ["flowers", "cub", "isic"]


def test_benchmarks_download_and_training_sets_are_manual():
    for name in ("flowers102", "cub200", "isic2016"):
        assert all(f.url and f.url.startswith("https://") for f in load_manifest(name).files)
    for name in ("imagenet", "ffhq"):
        manifest = load_manifest(name)
        assert not manifest.downloadable and manifest.notes and manifest.eval_dataset is None


def test_shipped_split_files_match_their_recorded_checksums():
    for name in SHIPPED:
        for split_file in load_manifest(name).split_files:
            if split_file.location == "shipped":
                assert _sha256(shipped_file(split_file.name).read_bytes()) == split_file.sha256
    labels = [line.split()[1] for line in shipped_file("cub_train_val_test_split.txt").read_text().splitlines()]
    assert len(labels) == 11788 and labels.count("2") == 1000
    assert len(shipped_file("flowers102_iem_test_ids.txt").read_text().split()) == 1020


def test_unknown_manifest_and_bad_fields_are_named(tmp_path):
    with pytest.raises(DatasetError, match="unknown dataset 'voc'"):
        load_manifest("voc")
    data = yaml.safe_load(shipped_file("isic2016.yaml").read_text())
    data["files"][0]["checksum"] = "abc"
    with pytest.raises(DatasetError, match=r"files\[0\]: unknown field\(s\) checksum"):
        parse_manifest(data, "isic2016.yaml")
    del data["files"][0]["checksum"]
    del data["licence"]
    with pytest.raises(DatasetError, match=r"missing field\(s\) licence"):
        parse_manifest(data, "isic2016.yaml")


# ----------------------------------------------------------------------------- a small manifest

def _tgz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, data in members.items():
            bundle.writestr(name, data)
    return buffer.getvalue()


PACK_TGZ = _tgz({"pics/a.txt": b"a", "pics/b.txt": b"b"})
PACK_ZIP = _zip({"labels/a.txt": b"1"})
SPLIT = b"a\nb\n"


def _manifest(base_url: str | None = None, **file_changes) -> Manifest:
    files = [
        dict(name="pack.tgz", size=len(PACK_TGZ), sha256=_sha256(PACK_TGZ), extract=True),
        dict(name="labels.zip", sha256=None, extract=True),
        dict(name="split.txt", sha256=_sha256(SPLIT)),
    ]
    for entry in files:
        entry.update(file_changes.get(entry["name"], {}))
        if base_url:
            entry["url"] = f"{base_url}/{entry['name']}"
    return parse_manifest(dict(
        name="tiny", title="Tiny", homepage="https://example.org", licence="none", citation="none",
        protocol="none", files=files,
        layout=[dict(path="pics/", pattern="*.txt", count=2), dict(path="labels/"), dict(path="split.txt")],
        split=dict(definition="all", files=[dict(name="split.txt", location="root", sha256=_sha256(SPLIT))]),
    ), "tiny.yaml")


@pytest.fixture
def good_root(tmp_path) -> Path:
    root = tmp_path / "tiny"
    root.mkdir()
    (root / "split.txt").write_bytes(SPLIT)
    extract_archive(_write(root / "pack.tgz", PACK_TGZ), root)
    extract_archive(_write(root / "labels.zip", PACK_ZIP), root)
    return root


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_verify_accepts_a_good_copy_and_notes_missing_checksums(good_root):
    report = verify(_manifest(), good_root)
    assert report.ok, report.problems
    assert [str(n) for n in report.notes] == ["labels.zip: no checksum on record"]


def test_verify_names_corrupted_and_missing_files(good_root):
    (good_root / "split.txt").write_bytes(b"a\nc\n")
    (good_root / "pack.tgz").unlink()
    (good_root / "pics" / "b.txt").unlink()
    report = verify(_manifest(), good_root)
    problems = [str(p) for p in report.problems]
    assert problems[0].startswith("split.txt: checksum mismatch (sha256 expected")
    assert "pics/: wrong count (expected 2 files matching *.txt, found 1)" in problems
    assert "pack.tgz: archive not present (not needed once extracted)" in [str(n) for n in report.notes]
    (good_root / "split.txt").unlink()
    assert "split.txt: missing" in [str(p) for p in verify(_manifest(), good_root).problems]


def test_verify_checks_an_md5_when_that_is_all_on_record(good_root):
    md5 = hashlib.md5(SPLIT).hexdigest()
    assert verify(_manifest(**{"split.txt": {"sha256": None, "md5": md5}}), good_root).ok
    (good_root / "split.txt").write_bytes(b"other")
    report = verify(_manifest(**{"split.txt": {"sha256": None, "md5": md5}}), good_root)
    assert str(report.problems[0]).startswith(f"split.txt: checksum mismatch (md5 expected {md5}")


def test_verify_counts_and_then_asks_the_evaluation_reader(tmp_path):
    images, masks = tmp_path / "ISBI2016_ISIC_Part1_Test_Data", tmp_path / "ISBI2016_ISIC_Part1_Test_GroundTruth"
    images.mkdir()
    masks.mkdir()
    report = verify(load_manifest("isic"), tmp_path)
    assert [str(p) for p in report.problems] == [
        "ISBI2016_ISIC_Part1_Test_Data/: wrong count (expected 379 files matching ISIC_*.jpg, found 0)",
        "ISBI2016_ISIC_Part1_Test_GroundTruth/: wrong count (expected 379 files matching ISIC_*_Segmentation.png, found 0)",
    ]
    # With a sound layout the reader's own check runs: here an image lacks its ground truth.
    data = yaml.safe_load(shipped_file("isic2016.yaml").read_text())
    for entry in data["layout"]:
        entry["count"] = None
    _write(images / "ISIC_0000001.jpg", b"jpeg bytes are not read by verify")
    report = verify(parse_manifest(data), tmp_path)
    assert len(report.problems) == 1 and str(report.problems[0]).startswith("test split: ")
    assert "ISIC_0000001_Segmentation.png" in str(report.problems[0])


# ----------------------------------------------------------------------------- fetch over loopback

@pytest.fixture
def server(tmp_path, monkeypatch):
    """Serves tmp_path/served on 127.0.0.1; yields (base_url, list of requested paths)."""
    for variable in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    served = tmp_path / "served"
    served.mkdir()
    _write(served / "pack.tgz", PACK_TGZ)
    _write(served / "labels.zip", PACK_ZIP)
    _write(served / "split.txt", SPLIT)
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            requests.append(self.path)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(served)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", requests
    httpd.shutdown()
    httpd.server_close()


class _RecordingProgress:
    """rich's Progress interface, recording how many bytes each task advanced."""

    def __init__(self):
        self.advanced: dict[str, int] = {}
        self._names: list[str] = []

    def add_task(self, description, total=None):
        self._names.append(description)
        self.advanced.setdefault(description, 0)
        return len(self._names) - 1

    def advance(self, task, amount):
        self.advanced[self._names[task]] += amount


def test_fetch_downloads_checks_and_extracts(server, tmp_path):
    base_url, requests = server
    root = tmp_path / "data"
    manifest = _manifest(base_url)
    bar = _RecordingProgress()
    paths = fetch(manifest, root, progress=bar)
    assert bar.advanced == {f"downloading {name}": len(data) for name, data in
                            (("pack.tgz", PACK_TGZ), ("labels.zip", PACK_ZIP), ("split.txt", SPLIT))}
    assert paths == [root / "pack.tgz", root / "labels.zip", root / "split.txt"]
    assert (root / "pics" / "b.txt").read_bytes() == b"b" and (root / "labels" / "a.txt").is_file()
    assert not list(root.glob("*.part"))
    assert verify(manifest, root).ok
    assert len(requests) == 3
    # Present files with a matching checksum (or no checksum to compare) are not downloaded again.
    fetch(manifest, root, progress=None)
    assert len(requests) == 3
    (root / "split.txt").write_bytes(b"damaged")
    fetch(manifest, root, progress=None)
    assert len(requests) == 4 and (root / "split.txt").read_bytes() == SPLIT
    # Unpacked contents deleted: the archive on disk is unpacked again, not downloaded.
    for path in (root / "pics").iterdir():
        path.unlink()
    (root / "pics").rmdir()
    fetch(manifest, root, progress=None)
    assert len(requests) == 4 and (root / "pics" / "a.txt").is_file()


def test_fetch_rejects_a_checksum_mismatch(server, tmp_path):
    base_url, _ = server
    root = tmp_path / "data"
    manifest = _manifest(base_url, **{"split.txt": {"sha256": "0" * 64}})
    with pytest.raises(DatasetError, match="split.txt downloaded from .*checksum mismatch"):
        fetch(manifest, root, progress=None)
    assert not (root / "split.txt").exists() and not (root / "split.txt.part").exists()


def test_fetch_reports_404_and_refused_connection(server, tmp_path):
    base_url, _ = server
    root = tmp_path / "data"
    missing = _manifest(base_url, **{"pack.tgz": {"name": "gone.tgz"}})
    with pytest.raises(DatasetError, match=rf"cannot download {base_url}/gone.tgz: HTTP 404 .*download it by hand into"):
        fetch(missing, root, progress=None)
    with socket.socket() as probe:   # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DatasetError, match=rf"cannot download http://127.0.0.1:{port}/pack.tgz: .*refused"):
        fetch(_manifest(f"http://127.0.0.1:{port}"), root, progress=None)


def test_fetch_without_urls_says_download_by_hand(tmp_path):
    with pytest.raises(DatasetError, match="ffhq: no public download URL; download it by hand"):
        fetch(load_manifest("ffhq"), tmp_path, progress=None)


@pytest.mark.parametrize("suffix", [".tgz", ".zip"])
def test_extraction_refuses_members_outside_the_target(tmp_path, suffix):
    target = tmp_path / "root"
    target.mkdir()
    members = {"ok.txt": b"ok", "../evil.txt": b"evil"}
    archive = _write(tmp_path / f"bad{suffix}", _tgz(members) if suffix == ".tgz" else _zip(members))
    with pytest.raises(DatasetError, match="unsafe archive, member '../evil.txt'.*nothing extracted"):
        extract_archive(archive, target)
    assert not (tmp_path / "evil.txt").exists() and not (target / "ok.txt").exists()
    assert list(target.iterdir()) == []


def test_extraction_refuses_links_outside_the_target(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        link = tarfile.TarInfo("escape")
        link.type, link.linkname = tarfile.SYMTYPE, "../../etc"
        tar.addfile(link)
    archive = _write(tmp_path / "links.tar", buffer.getvalue())
    with pytest.raises(DatasetError, match="unsafe archive, member 'escape' links to '../../etc'"):
        extract_archive(archive, tmp_path / "root")


def _tar_with(entries) -> bytes:
    """A tar of (name, kind, payload): kind 'file' (payload = bytes) or 'sym' (payload = link target)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, kind, payload in entries:
            info = tarfile.TarInfo(name)
            if kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, payload
                tar.addfile(info)
            else:
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def test_symlink_chain_tar_is_unsafe_and_nothing_is_extracted(tmp_path):
    target = tmp_path / "a" / "b" / "root"
    target.mkdir(parents=True)
    archive = _write(tmp_path / "chain.tar", _tar_with([
        ("first.txt", "file", b"extracted before the bad member in the old code"),
        ("s", "sym", "."),
        ("s/s/s/esc", "sym", "../.."),
        ("s/s/s/esc/victim.txt", "file", b"evil"),
    ]))
    with pytest.raises(DatasetError, match="unsafe archive"):
        extract_archive(archive, target)
    assert list(target.iterdir()) == []
    assert not list(tmp_path.rglob("victim.txt"))


def test_zip_with_a_symlink_entry_is_unsafe_and_leaves_nothing(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("ok.txt", b"ok")
        link = zipfile.ZipInfo("link")
        link.external_attr = (0o120777 << 16)
        bundle.writestr(link, "../../outside")
        bundle.writestr("link/inner.txt", b"evil")
    archive = _write(tmp_path / "links.zip", buffer.getvalue())
    target = tmp_path / "root"
    with pytest.raises(DatasetError, match="unsafe archive, member 'link' is a symbolic link"):
        extract_archive(archive, target)
    assert list(target.iterdir()) == []


def test_a_failing_unpack_leaves_the_target_as_it_was(tmp_path):
    target = tmp_path / "root"
    (target / "pics").mkdir(parents=True)
    (target / "pics" / "mine.txt").write_text("user data")
    archive = _write(tmp_path / "cut.tgz", _tgz({"pics/a.txt": b"a" * 5000, "pics/b.txt": b"b"})[:-600])
    with pytest.raises(DatasetError, match="damaged archive|cannot unpack"):
        extract_archive(archive, target)
    assert sorted(p.name for p in target.rglob("*")) == ["mine.txt", "pics"]
    # A sound archive merges into existing folders without touching other files.
    extract_archive(_write(tmp_path / "ok.tgz", _tgz({"pics/a.txt": b"a"})), target)
    assert sorted(p.name for p in (target / "pics").iterdir()) == ["a.txt", "mine.txt"]
    assert not list(target.glob(".segtool-unpack-*"))


def _evil_manifest(**file_fields) -> dict:
    return {"name": "evil", "title": "Evil", "homepage": "https://example.org", "licence": "none",
            "citation": "none", "protocol": "none", "files": [dict({"name": "ok.txt"}, **file_fields)]}


@pytest.mark.parametrize("name", ["../../../../outside/victim.txt", "/tmp/victim.txt", "a/../../victim.txt",
                                  "..", "C:/victim.txt", "\\\\server\\share\\v.txt", "sub\\..\\..\\v.txt", ""])
def test_manifest_file_names_must_stay_inside_the_root(name):
    with pytest.raises(DatasetError, match=r"files\[0\]\.name must"):
        parse_manifest(_evil_manifest(name=name), "evil.yaml")


@pytest.mark.parametrize("entry, key", [({"path": "../../../etc/"}, "path"), ({"path": "/etc/"}, "path"),
                                        ({"path": "pics/", "pattern": "/etc/*"}, "pattern"),
                                        ({"path": "pics/", "pattern": "../*"}, "pattern")])
def test_manifest_layout_paths_must_stay_inside_the_root(entry, key):
    with pytest.raises(DatasetError, match=rf"layout\[0\]\.{key} must"):
        parse_manifest(dict(_evil_manifest(), layout=[entry]), "evil.yaml")


def test_fetch_never_writes_outside_the_root(server, tmp_path):
    base_url, requests = server
    victim = tmp_path / "outside" / "victim.txt"
    victim.parent.mkdir()
    victim.write_text("precious")
    manifest_path = tmp_path / "evil.yaml"
    manifest_path.write_text(yaml.safe_dump(_evil_manifest(name="../outside/victim.txt", url=f"{base_url}/split.txt",
                                                           sha256=_sha256(SPLIT))))
    result = CliRunner().invoke(data_app, ["fetch", str(manifest_path), "--data-root", str(tmp_path / "R")])
    assert isinstance(result.exception, DatasetError) and "must stay inside the data root" in str(result.exception)
    assert victim.read_text() == "precious" and not (tmp_path / "R").exists() and requests == []


@pytest.mark.parametrize("value, message", [
    ("0" * 64, "must be a quoted string of 64 hex digits"),      # YAML reads an unquoted 000... as 0
    ("1" * 64, "must be a quoted string of 64 hex digits"),
    ("'abc'", "must be 64 hex digits"),
])
def test_manifest_checksums_are_hex_strings_of_the_right_length(tmp_path, value, message):
    path = tmp_path / "m.yaml"
    path.write_text("name: m\ntitle: M\nhomepage: h\nlicence: l\ncitation: c\nprotocol: p\n"
                    f"files:\n  - name: good.tar\n    sha256: {value}\n")
    with pytest.raises(DatasetError, match=rf"files\[0\]\.sha256 {message}"):
        load_manifest(str(path))


@pytest.mark.parametrize("extra, message", [("files: 5", "files must be a list"),
                                            ("aliases: 7", "aliases must be a list of names")])
def test_manifest_lists_are_lists(tmp_path, extra, message):
    path = tmp_path / "m.yaml"
    path.write_text(f"name: m\ntitle: M\nhomepage: h\nlicence: l\ncitation: c\nprotocol: p\n{extra}\n")
    with pytest.raises(DatasetError, match=message):
        load_manifest(str(path))


# ----------------------------------------------------------------------------- segtool data ...

def test_cli_list_and_info():
    runner = CliRunner()
    listed = runner.invoke(data_app, ["list"])
    assert listed.exit_code == 0 and all(name in listed.output for name in SHIPPED)
    info = runner.invoke(data_app, ["info", "flowers"])
    assert info.exit_code == 0
    assert "102segmentations.tgz" in info.output and "segtool eval flowers" in info.output
    assert "Nilsback08" in info.output


def test_cli_verify_prints_problems_and_exits_1(good_root, tmp_path):
    manifest_path = tmp_path / "tiny.yaml"
    data = yaml.safe_load(yaml.safe_dump({
        "name": "tiny", "title": "Tiny", "homepage": "https://example.org", "licence": "none",
        "citation": "none", "protocol": "none",
        "files": [{"name": "split.txt", "sha256": _sha256(SPLIT)}],
        "layout": [{"path": "pics/", "pattern": "*.txt", "count": 2}],
    }))
    manifest_path.write_text(yaml.safe_dump(data))
    runner = CliRunner()
    ok = runner.invoke(data_app, ["verify", str(manifest_path), "--data-root", str(good_root), "--no-progress"])
    assert ok.exit_code == 0 and ok.output.startswith("ok: ")
    (good_root / "split.txt").write_bytes(b"changed")
    (good_root / "pics" / "a.txt").unlink()
    bad = runner.invoke(data_app, ["verify", str(manifest_path), "--data-root", str(good_root), "--no-progress"])
    assert bad.exit_code == 1
    lines = bad.output.splitlines()
    assert lines[0].startswith("problem: split.txt: checksum mismatch")
    assert lines[1] == "problem: pics/: wrong count (expected 2 files matching *.txt, found 1)"


def test_cli_errors_are_dataset_errors(tmp_path):
    result = CliRunner().invoke(data_app, ["fetch", "imagenet", "--data-root", str(tmp_path)])
    assert isinstance(result.exception, DatasetError)
    from segtool.locations import default_dataset_root

    # Without --data-root, verify checks where `data fetch` puts the set (absent here: exit 1, saying where).
    default_root = CliRunner().invoke(data_app, ["verify", "cub", "--no-progress"])
    assert default_root.exit_code == 1 and str(default_dataset_root("cub200")) in default_root.output
