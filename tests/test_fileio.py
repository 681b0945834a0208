"""Safe writes (``hrm_env.fileio``): whole files or none, one-line errors, honest preflight."""

from __future__ import annotations

import errno
import os
import pickle
import re
import stat
import subprocess
import sys

import numpy as np
import pytest

from hrm_env.fileio import (
    WriteError,
    append_text,
    atomic_open,
    atomic_path,
    atomic_write,
    check_writable,
    save_figure,
    write_bytes,
    write_text,
)


def one_line(err: BaseException) -> str:
    text = str(err)
    assert "\n" not in text, text
    return text


def test_text_and_bytes_land_whole_with_the_umask_mode(tmp_path):
    write_text(tmp_path / "a.txt", "héllo\n")
    write_bytes(tmp_path / "deep" / "b.bin", b"\x00\x01")  # missing folders are made
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "héllo\n"
    assert (tmp_path / "deep" / "b.bin").read_bytes() == b"\x00\x01"
    umask = os.umask(0)
    os.umask(umask)
    # As a plain open() would make it (tempfile.mkstemp would leave it private, 0600).
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o666 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "deep"]


def test_a_failure_mid_write_leaves_the_old_file_and_no_temp(tmp_path, snapshot):
    target = tmp_path / "rows.csv"
    target.write_text("old\n")
    before = snapshot(tmp_path)
    with pytest.raises(WriteError) as info, atomic_open(target, newline="") as f:
        f.write("new,partial" * 1000)
        # What a write() on a full disk raises, half way through.
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert one_line(info.value) == f"cannot write {target}: no space left on device"
    assert info.value.errno == errno.ENOSPC and info.value.exit_code == 1
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("stop", [KeyboardInterrupt, ValueError])
def test_other_exceptions_pass_through_and_clean_up(tmp_path, stop):
    target = tmp_path / "x.gif"
    with pytest.raises(stop), atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".gif"  # format detection still works
        tmp.write_bytes(b"GIF89a")
        raise stop()
    assert list(tmp_path.iterdir()) == []


def test_a_failed_sync_or_rename_is_one_line_and_cleans_up(tmp_path, monkeypatch, snapshot):
    target = tmp_path / "state.pt"
    target.write_bytes(b"old")
    before = snapshot(tmp_path)

    def fail(*args, **kwargs):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    for name in ("fsync", "replace"):
        with monkeypatch.context() as m:
            m.setattr(os, name, fail)
            with pytest.raises(
                WriteError, match=re.escape(f"cannot write {target}: input/output error")
            ):
                atomic_write(target, lambda tmp: tmp.write_bytes(b"new"))
        assert snapshot(tmp_path) == before


def test_the_disk_full_fixture_fails_every_kind_of_write(tmp_path, write_faults, snapshot):
    (tmp_path / "keep.json").write_text("{}")
    before = snapshot(tmp_path)
    write_faults.disk_full()
    for write in (
        lambda: write_text(tmp_path / "keep.json", "[]"),
        lambda: write_bytes(tmp_path / "b.bin", b"x"),
        lambda: atomic_write(tmp_path / "c.npy", lambda tmp: np.save(tmp, np.zeros(3))),
    ):
        with pytest.raises(WriteError, match="no space left on device"):
            write()
    assert snapshot(tmp_path) == before


def test_a_folder_at_the_target_or_a_file_among_the_parents(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_text("x")
    cases = {
        tmp_path / "d": "it is a folder; give a file name",
        tmp_path / "f" / "x.csv": f"{tmp_path / 'f'} is a file, not a folder",
        tmp_path / "f" / "deeper" / "x.csv": f"{tmp_path / 'f'} is a file, not a folder",
    }
    for path, reason in cases.items():
        for attempt in (lambda p=path: check_writable(p), lambda p=path: write_text(p, "y")):
            with pytest.raises(WriteError) as info:
                attempt()
            assert one_line(info.value) == f"cannot write {path}: {reason}"
    with pytest.raises(WriteError, match="it is a file, not a folder"):
        check_writable(tmp_path / "f", folder=True)
    assert (tmp_path / "f").read_text() == "x"


def test_preflight_says_whether_a_missing_folder_can_be_made(tmp_path, write_faults):
    new = tmp_path / "runs" / "a" / "x.csv"
    assert check_writable(new) == new
    assert check_writable(tmp_path / "runs" / "b", folder=True) == tmp_path / "runs" / "b"
    assert not (tmp_path / "runs").exists()  # nothing made, nothing left
    with pytest.raises(WriteError, match=r"folder .*a does not exist$") as info:
        check_writable(new, create=False)
    assert info.value.up_front and info.value.exit_code == 2

    write_faults.read_only(tmp_path)
    with pytest.raises(WriteError) as info:
        check_writable(new)
    assert one_line(info.value) == (
        f"cannot write {new}: folder {tmp_path / 'runs'} cannot be created: {tmp_path} is not "
        "writable (read-only file system)"
    )
    with pytest.raises(WriteError, match=r"folder .* is not writable \(read-only file system\)"):
        check_writable(tmp_path / "x.csv")


def test_preflight_of_a_folder_refusing_permission(tmp_path, write_faults):
    write_faults.read_only(tmp_path, code=errno.EACCES)
    with pytest.raises(WriteError) as info:
        check_writable(tmp_path, folder=True)
    assert str(info.value) == (
        f"cannot write {tmp_path}: folder {tmp_path} is not writable (permission denied)"
    )


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores permission bits"
)
def test_a_real_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    (folder / "old.csv").write_text("old")
    folder.chmod(0o555)
    try:
        with pytest.raises(WriteError, match="permission denied"):
            check_writable(folder / "old.csv")
        with pytest.raises(WriteError, match="permission denied"):
            write_text(folder / "old.csv", "new")
        assert sorted(p.name for p in folder.iterdir()) == ["old.csv"]
        assert (folder / "old.csv").read_text() == "old"
    finally:
        folder.chmod(0o755)


def test_append_adds_whole_rows_or_none(tmp_path, monkeypatch):
    log = tmp_path / "train.csv"
    write_text(log, "step,loss\n", newline="")
    append_text(log, "1,0.5\n")
    append_text(log, "2,0.4\n", fsync=True)
    assert log.read_text() == "step,loss\n1,0.5\n2,0.4\n"

    real_write = os.write

    def half_then_full(fd, data):
        # The disk fills half way through the row: a short write, then ENOSPC.
        if len(data) > 2:
            return real_write(fd, bytes(data[:2]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(WriteError, match=re.escape(f"cannot write {log}: no space left on device")):
        append_text(log, "3,0.3\n")
    monkeypatch.undo()
    assert log.read_text() == "step,loss\n1,0.5\n2,0.4\n"  # no torn row
    with pytest.raises(WriteError, match="does not exist"):
        append_text(tmp_path / "missing.csv", "x\n")


def test_save_figure_keeps_the_format_of_the_real_name(tmp_path):
    calls = []

    class Figure:
        def savefig(self, path, **kwargs):
            calls.append(kwargs)
            with open(path, "wb") as f:
                f.write(b"data")

    save_figure(Figure(), tmp_path / "a.svg", dpi=50)
    save_figure(Figure(), tmp_path / "b")
    assert calls == [{"dpi": 50, "format": "svg"}, {"format": "png"}]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.svg", "b"]


def test_write_error_survives_pickling_and_is_an_oserror():
    err = WriteError("/x/y.csv", "read-only file system", code=errno.EROFS, up_front=True)
    back = pickle.loads(pickle.dumps(err))
    assert isinstance(back, OSError) and str(back) == str(err) == (
        "cannot write /x/y.csv: read-only file system"
    )
    assert back.up_front and back.errno == errno.EROFS and back.filename == "/x/y.csv"


def test_importing_fileio_imports_neither_torch_nor_the_agent():
    code = "import sys, hrm_env.fileio; print('torch' in sys.modules, 'hrm_agent' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False", "False"]
