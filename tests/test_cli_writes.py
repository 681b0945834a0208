"""Every file ``hrm`` writes: a read-only folder, a folder where a file is expected, a full
disk. Each is one line on stderr naming the path, exit 2 when found before the work, exit 1
when a write fails while running, and leaves no partial or temporary file, nor a changed old
one. Output into a pipe that closes early ends quietly.

The faults are simulated (``write_faults`` in conftest), so these tests hold as root too.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hrm_agent.cli import main
from hrm_env.envs.reasoner import ScriptedReasoner

ROOT = Path(__file__).resolve().parents[1]

DATA = ["data", "sudoku-mini", "-n", "3", "--workers", "1", "--no-progress"]


def cannot_write(err: str, command: str, path: Path) -> str:
    """The reason in the one error line, ``hrm COMMAND: cannot write PATH: reason``, that ends
    ``err`` (lines before it are progress notes of the command, never a traceback)."""
    assert "Traceback" not in err and err.endswith("\n"), err
    lines = err.splitlines()
    assert [line for line in lines if line.startswith("hrm ")] == lines[-1:], err
    prefix = f"hrm {command}: cannot write {path}: "
    assert lines[-1].startswith(prefix), err
    return lines[-1][len(prefix) :]


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """An output folder that already holds files (which a failure must leave as they were)."""
    folder = tmp_path / "out"
    folder.mkdir()
    for name in ("old.csv", "old.gif", "frontier.csv", "residuals.png"):
        (folder / name).write_bytes(b"the file from before")
    return folder


# --------------------------------------------------------------------------- hrm data


def test_data_into_a_read_only_folder(out, write_faults, snapshot, capsys):
    before = snapshot(out)
    write_faults.read_only(out)
    assert main([*DATA, "--out", str(out / "old.csv")]) == 2
    reason = cannot_write(capsys.readouterr().err, "data", out / "old.csv")
    assert reason == f"folder {out} is not writable (read-only file system)"
    assert snapshot(out) == before


def test_data_into_a_missing_folder_that_cannot_be_made(out, write_faults, capsys):
    target = out / "new" / "x.csv"
    write_faults.read_only(out)
    assert main([*DATA, "--out", str(target)]) == 2
    reason = cannot_write(capsys.readouterr().err, "data", target)
    assert reason.startswith(f"folder {out / 'new'} cannot be created: {out} is not writable")


def test_data_onto_a_folder(out, snapshot, capsys):
    before = snapshot(out)
    assert main([*DATA, "--out", str(out)]) == 2
    assert cannot_write(capsys.readouterr().err, "data", out) == "it is a folder; give a file name"
    assert snapshot(out) == before


@pytest.mark.parametrize("task", ["sudoku-mini", "maze"])
def test_data_on_a_full_disk(task, out, write_faults, snapshot, capsys):
    before = snapshot(out)
    write_faults.disk_full()
    argv = ["data", task, "-n", "2", "--workers", "1", "--no-progress"]
    assert main([*argv, "--out", str(out / "old.csv")]) == 1
    reason = cannot_write(capsys.readouterr().err, "data", out / "old.csv")
    assert reason == "no space left on device"
    assert snapshot(out) == before  # no truncated CSV, no temp file, the old file whole


# --------------------------------------------------------------------------- hrm watch --save


@pytest.fixture
def scripted_watch(monkeypatch):
    """``hrm watch`` drives a scripted reasoner instead of loading the shipped model."""
    from hrm_env.render import watch as watch_module

    monkeypatch.setattr(
        watch_module,
        "load_reasoner",
        lambda task, checkpoint, device: ScriptedReasoner(task, solve_at=2),
    )
    return ["watch", "sudoku-mini", "--seed", "0", "--fps", "20"]


def test_watch_save_into_a_read_only_folder_fails_before_playing(
    scripted_watch, out, write_faults, snapshot, capsys
):
    before = snapshot(out)
    write_faults.read_only(out)
    assert main([*scripted_watch, "--save", str(out / "old.gif")]) == 2
    captured = capsys.readouterr()
    reason = cannot_write(captured.err, "watch", out / "old.gif")
    assert reason == f"folder {out} is not writable (read-only file system)"
    assert "puzzle 1" not in captured.out  # found before the episode was played
    assert snapshot(out) == before


def test_watch_save_onto_a_folder(scripted_watch, tmp_path, capsys):
    folder = tmp_path / "solve.gif"  # a folder with an animation's name
    folder.mkdir()
    assert main([*scripted_watch, "--save", str(folder)]) == 2
    captured = capsys.readouterr()
    assert cannot_write(captured.err, "watch", folder) == "it is a folder; give a file name"
    assert "puzzle 1" not in captured.out and list(folder.iterdir()) == []


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_watch_save_on_a_full_disk(suffix, scripted_watch, out, write_faults, snapshot, capsys):
    if suffix == ".mp4":
        pytest.importorskip("imageio_ffmpeg")
    target = out / f"old{suffix}"
    before = snapshot(out)
    write_faults.disk_full()
    assert main([*scripted_watch, "--save", str(target)]) == 1
    captured = capsys.readouterr()
    assert cannot_write(captured.err, "watch", target) == "no space left on device"
    assert "puzzle 1: solved" in captured.out  # played, then the write failed
    assert snapshot(out) == before  # no 0-byte GIF, the old one untouched


# --------------------------------------------------------------------------- hrm frontier

FRONTIER = [
    "frontier", "sudoku-mini", "--preset", "tiny", "--n", "4", "--max-cycles", "2",
    "--batch-size", "4", "--thresholds", "0.5", "--stable", "1", "--threads", "1",
]  # fmt: skip


@pytest.mark.parametrize("where", ["out", "recording"])
def test_frontier_into_a_read_only_folder_fails_before_recording(
    where, out, tmp_path, write_faults, snapshot, capsys
):
    pytest.importorskip("torch")
    before = snapshot(out)
    write_faults.read_only(out)
    if where == "out":
        argv, path = ["--out", str(out)], out
    else:
        path = out / "cycles.npz"
        argv = ["--out", str(tmp_path / "elsewhere"), "--recording", str(path)]
    assert main([*FRONTIER, "--no-plot", *argv]) == 2
    captured = capsys.readouterr()
    assert cannot_write(captured.err, "frontier", path).endswith("(read-only file system)")
    assert "recording" not in captured.err
    assert snapshot(out) == before and not (tmp_path / "elsewhere").exists()


def test_frontier_out_is_a_file(tmp_path, capsys):
    pytest.importorskip("torch")
    path = tmp_path / "frontier.csv"
    path.write_text("old")
    assert main([*FRONTIER, "--no-plot", "--out", str(path)]) == 2
    assert cannot_write(capsys.readouterr().err, "frontier", path) == "it is a file, not a folder"
    assert path.read_text() == "old"


def test_frontier_on_a_full_disk(out, write_faults, snapshot, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("matplotlib")
    before = snapshot(out)
    write_faults.disk_full()
    assert main([*FRONTIER, "--out", str(out)]) == 1
    reason = cannot_write(capsys.readouterr().err, "frontier", out / "frontier.csv")
    assert reason == "no space left on device"
    assert snapshot(out) == before  # neither frontier.csv/png/json nor a temp file


# --------------------------------------------------------------------------- hrm analyze


@pytest.fixture
def tiny_checkpoint(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("matplotlib")
    from hrm_agent.checkpoint import save_checkpoint
    from hrm_agent.config import HRMConfig
    from hrm_agent.model import HRM

    torch.set_num_threads(1)
    model = HRM(HRMConfig.preset("tiny", max_segments=2), generator=torch.Generator())
    stem = tmp_path / "ckpt" / "tiny"
    save_checkpoint(stem, model, meta={"task": "sudoku"})
    return ["analyze", "sudoku", "--checkpoint", str(stem), "--n", "2", "--cycles", "2"]


def test_analyze_into_a_read_only_folder(tiny_checkpoint, out, write_faults, snapshot, capsys):
    before = snapshot(out)
    write_faults.read_only(out)
    target = out / "figures"
    assert main([*tiny_checkpoint, "--out", str(target)]) == 2
    reason = cannot_write(capsys.readouterr().err, "analyze", target)
    assert (
        reason
        == f"folder {target} cannot be created: {out} is not writable (read-only file system)"
    )
    assert snapshot(out) == before


def test_analyze_out_is_a_file(tiny_checkpoint, out, capsys):
    assert main([*tiny_checkpoint, "--out", str(out / "old.csv")]) == 2
    reason = cannot_write(capsys.readouterr().err, "analyze", out / "old.csv")
    assert reason == "it is a file, not a folder"


def test_analyze_on_a_full_disk(tiny_checkpoint, out, write_faults, snapshot, capsys):
    before = snapshot(out)
    write_faults.disk_full()
    assert main([*tiny_checkpoint, "--out", str(out)]) == 1
    reason = cannot_write(capsys.readouterr().err, "analyze", out / "residuals.png")
    assert reason == "no space left on device"
    assert snapshot(out) == before


# --------------------------------------------------------------------------- checkpoints


def test_checkpoint_and_trainer_state_writes_keep_the_old_files(tmp_path, write_faults, snapshot):
    torch = pytest.importorskip("torch")
    from hrm_agent.checkpoint import load_checkpoint, save_checkpoint, save_trainer_state
    from hrm_agent.config import HRMConfig
    from hrm_agent.model import HRM
    from hrm_env.fileio import WriteError

    old = HRM(HRMConfig.preset("tiny"), generator=torch.Generator().manual_seed(0))
    new = HRM(HRMConfig.preset("tiny"), generator=torch.Generator().manual_seed(1))
    stem = tmp_path / "run" / "model"
    save_checkpoint(stem, old)
    save_trainer_state(tmp_path / "run" / "model.trainer.pt", {"step": torch.tensor(3)})
    before = snapshot(tmp_path / "run")

    write_faults.disk_full()
    with pytest.raises(WriteError) as info:
        save_checkpoint(stem, new)
    assert str(info.value) == f"cannot write {stem}.safetensors: no space left on device"
    with pytest.raises(WriteError, match="model.trainer.pt: no space left on device"):
        save_trainer_state(tmp_path / "run" / "model.trainer.pt", {"step": torch.tensor(4)})
    assert snapshot(tmp_path / "run") == before
    write_faults.monkeypatch.undo()

    write_faults.read_only(tmp_path / "run")
    with pytest.raises(WriteError, match=r"model\.safetensors: read-only file system"):
        save_checkpoint(stem, new)
    assert snapshot(tmp_path / "run") == before
    loaded, _, _ = load_checkpoint(stem)
    for name, tensor in old.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name


# --------------------------------------------------------------------------- hrm train --out-dir

TRAIN = ["train", "sudoku-mini", "--preset", "tiny", "--steps", "1", "--threads", "1"]


def test_train_out_dir_that_is_a_file(tmp_path, capsys):
    path = tmp_path / "run"
    path.write_text("not a folder")
    assert main([*TRAIN, "--out-dir", str(path)]) == 2
    assert cannot_write(capsys.readouterr().err, "train", path) == "it is a file, not a folder"
    assert path.read_text() == "not a folder"


def test_train_out_dir_under_a_read_only_folder(tmp_path, write_faults, capsys):
    path = tmp_path / "runs" / "a"
    write_faults.read_only(tmp_path)
    assert main([*TRAIN, "--out-dir", str(path)]) == 2
    reason = cannot_write(capsys.readouterr().err, "train", path)
    assert reason == (
        f"folder {tmp_path / 'runs'} cannot be created: {tmp_path} is not writable "
        "(read-only file system)"
    )
    assert list(tmp_path.iterdir()) == []


def test_train_default_out_dir_is_checked_too(tmp_path, write_faults, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_faults.read_only(tmp_path)
    assert main(TRAIN) == 2
    err = capsys.readouterr().err
    assert err.startswith("hrm train: cannot write runs/sudoku-mini-tiny: folder runs cannot")


# --------------------------------------------------------------------------- closed pipes


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        [*DATA, "--out", "{tmp}/x.csv"],
        ["eval", "sudoku-mini", "--limit", "2", "--json"],
    ],
    ids=["help", "data", "eval-json"],
)
def test_output_into_a_closed_pipe_ends_quietly(argv, tmp_path):
    """As ``hrm ... | head -c 10`` when head has exited: no BrokenPipeError traceback."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    child = subprocess.Popen(
        [sys.executable, "-m", "hrm_agent.cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=tmp_path,
    )
    child.stdout.close()  # the reader is gone before the first line is printed
    err = child.stderr.read().decode()
    child.stderr.close()
    assert child.wait(timeout=120) in (0, 141), err
    assert err == "", err


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_output_redirected_into_a_full_disk_is_one_line(tmp_path):
    """As ``hrm data ... > file`` on a full disk: /dev/full fails every write with ENOSPC."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [sys.executable, "-m", "hrm_agent.cli", *DATA, "--out", str(tmp_path / "x.csv")],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            timeout=120,
        )
    assert result.returncode == 1
    assert result.stderr.endswith("no space left on device\n") and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert (tmp_path / "x.csv").is_file()  # the puzzles themselves were written whole
