"""The console script's quick exit: the same exit status, output and exit handlers as a normal
exit, and a normal exit whenever a thread of ours is still at work."""

import subprocess
import sys
import threading

import numpy as np
import pytest
from PIL import Image

from segtool.cli.quick_exit import exit_code, leave

from conftest import subprocess_env, tiny_model  # noqa: F401 (fixture)


def run_script(code: str, tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env=subprocess_env(), cwd=tmp_path)


def test_exit_code_reads_sys_exit_arguments_the_same_way(capsys):
    assert exit_code(None) == 0
    assert exit_code(0) == 0
    assert exit_code(2) == 2
    assert exit_code("segtool: something went wrong") == 1
    assert "something went wrong" in capsys.readouterr().err


def test_a_running_thread_gets_the_normal_exit():
    release = threading.Event()
    worker = threading.Thread(target=release.wait)  # not a daemon: work the normal exit waits for
    worker.start()
    try:
        with pytest.raises(SystemExit) as info:
            leave(3)  # with no thread running this would end the test process itself
        assert info.value.code == 3
    finally:
        release.set()
        worker.join()


def test_exit_handlers_and_output_survive_the_quick_exit(tmp_path):
    marker = tmp_path / "handler-ran"
    log = tmp_path / "log.txt"
    code = (
        "import atexit, logging, pathlib\n"
        f"atexit.register(lambda: pathlib.Path({str(marker)!r}).write_text('yes'))\n"
        f"handler = logging.FileHandler({str(log)!r}, delay=False)\n"
        "logging.getLogger('x').addHandler(handler)\n"
        "logging.getLogger('x').warning('written before the exit')\n"
        "import sys; sys.stdout.write('unflushed text on stdout'); sys.stderr.write('and on stderr')\n"
        "from segtool.cli.app import run\n"
        "run(['--version'])\n"
    )
    proc = run_script(code, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("unflushed text on stdout")
    assert "segtool " in proc.stdout
    assert "and on stderr" in proc.stderr
    assert marker.read_text() == "yes"
    assert "written before the exit" in log.read_text()


def test_a_refused_option_keeps_its_status_and_message(tmp_path):
    proc = run_script("from segtool.cli.app import run\nrun(['segment', 'x.png', '--k', '0'])\n", tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("segtool: error: --k 0")


def test_the_exit_waits_for_a_thread_still_writing(tmp_path):
    late = tmp_path / "late.txt"
    code = (
        "import pathlib, threading, time\n"
        f"def work():\n    time.sleep(0.5)\n    pathlib.Path({str(late)!r}).write_text('done')\n"
        "threading.Thread(target=work).start()\n"
        "from segtool.cli.app import run\n"
        "run(['--version'])\n"
    )
    proc = run_script(code, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert late.read_text() == "done"


def test_segment_through_the_console_script_writes_whole_outputs(tiny_model, tmp_path):
    photo = tmp_path / "disc.png"
    image = np.zeros((40, 48, 3), np.uint8)
    image[10:30, 12:36] = (230, 200, 60)
    Image.fromarray(image).save(photo)
    out = tmp_path / "out"
    code = ("import sys\nfrom segtool.cli.app import run\n"
            f"run(['segment', {str(photo)!r}, '-o', {str(out)!r}, '--model', {tiny_model!r}, '--json', '-q'])\n")
    proc = run_script(code, tmp_path)
    assert proc.returncode == 0, proc.stderr
    import json

    payload = json.loads(proc.stdout)  # the whole JSON document reached the pipe
    mask_path = payload["results"][0]["outputs"]["mask"]
    mask = np.asarray(Image.open(mask_path))  # and the whole PNG reached the disk
    assert mask.shape == (40, 48)
    assert set(np.unique(mask)) <= {0, 255}
