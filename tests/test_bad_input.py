"""Every bad input gets one line, exit code 2, and nothing written to a study."""
import json
import subprocess
import sys

import optuna
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

from genas.cli import cli


def _no_study_written(home):
    db = home / "optuna.db"
    if not db.exists():
        return True
    return optuna.get_all_study_summaries(f"sqlite:///{db}") == []


def _one_line_error(result):
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize("args, words", [
    (["search", "nosuchspace", "--budget", "tiny"], ["unknown space", "dggan"]),
    (["search", "dggan", "--budget", "tiny", "--dataset", "nosuchdata"], ["unknown dataset", "mnist5k"]),
    (["search", "dggan", "--budget", "tiny", "--dataset", "folder:/does/not/exist"], ["does not exist"]),
    (["search", "dggan", "--budget", "tiny", "--objective", "nosuchmetric"], ["nosuchmetric", "swd"]),
    (["search", "progan", "--budget", "tiny", "--sampler", "nosuchsampler"], ["unknown sampler"]),
    (["search", "progan", "--budget", "tiny", "--sampler", "growth"], ["does not grow"]),
    (["search", "dggan", "--budget", "tiny", "--storage", "sqlite:////no/such/dir/optuna.db"], ["cannot open storage"]),
    (["search", "dggan", "--budget", "tiny", "--storage", "postgresql://postgres@127.0.0.1:1/none"], ["cannot open storage"]),
    (["worker", "nosuchstudy", "--trials", "1"], ["no study named", "nosuchstudy"]),
    (["sample", "models:/genas-nosuch@champion", "-o", "x.png"], ["does not resolve"]),
    (["registry", "promote", "nosuchstudy"], ["no study named"]),
])
def test_bad_input_one_line_exit_2(genas_home, args, words):
    line = _one_line_error(CliRunner().invoke(cli, args))
    for word in words:
        assert word in line
    assert _no_study_written(genas_home)


def _checkpoint(folder, config, tensors):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config))
    save_file(tensors, str(folder / "tensors.safetensors"))
    return folder


def test_corrupt_checkpoint(genas_home, tmp_path):
    folder = _checkpoint(tmp_path / "ckpt", {"space": "dggan"}, {"x": torch.zeros(1)})
    (folder / "tensors.safetensors").write_bytes(b"not a safetensors file")
    line = _one_line_error(CliRunner().invoke(cli, ["sample", str(folder), "-o", "x.png"]))
    assert "corrupt" in line


def test_mismatched_checkpoint(genas_home, tmp_path):
    folder = _checkpoint(tmp_path / "mismatch", {"space": "dggan"}, {"nonsense": torch.zeros(3)})
    line = _one_line_error(CliRunner().invoke(cli, ["sample", str(folder), "-o", "x.png"]))
    assert "checkpoint" in line


def test_unknown_space_in_checkpoint(genas_home, tmp_path):
    folder = _checkpoint(tmp_path / "alien", {"space": "alien"}, {"x": torch.zeros(1)})
    line = _one_line_error(CliRunner().invoke(cli, ["sample", str(folder), "-o", "x.png"]))
    assert "unknown space" in line


def test_console_script_exit_code(genas_home):
    out = subprocess.run([sys.executable, "-m", "genas.cli", "search", "nosuchspace"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().startswith("error: unknown space")


def test_fid_without_inception_weights(genas_home, monkeypatch):
    monkeypatch.setenv("GENAS_INCEPTION_WEIGHTS", str(genas_home / "missing" / "weights-inception-2015-12-05-6726825d.pth"))
    line = _one_line_error(CliRunner().invoke(cli, ["search", "progan", "--budget", "tiny", "--objective", "fid"]))
    assert "weights-inception-2015-12-05-6726825d.pth" in line
    assert _no_study_written(genas_home)


def _digit_folder(folder, n=12):
    from PIL import Image

    from genas.data import load_dataset

    folder.mkdir(parents=True)
    for i, img in enumerate(load_dataset("digits").uint8()[:n]):
        Image.fromarray(img[0].numpy()).save(folder / f"{i:02d}.png")
    return folder


def test_folder_with_an_unreadable_file_is_read_without_it(genas_home, tmp_path):
    folder = _digit_folder(tmp_path / "digits")
    (folder / "x.png").write_text("not an image, a stray text file")
    # README: unreadable files are skipped with one warning that counts them and names the first
    scored = CliRunner().invoke(cli, ["eval", "--dataset", "digits", "--fake", str(folder), "--metrics", "swd"])
    assert scored.exit_code == 0, scored.output + repr(scored.exception)
    text = " ".join(scored.output.split())  # rich wraps a long log line at the terminal width
    assert "skipped 1 of 13 files" in text and "x.png" in text and "Traceback" not in text
    assert text.count("skipped") == 1 and "swd_n_fake 12" in text

    other = _digit_folder(tmp_path / "more-digits")  # genas warns once per folder and process
    (other / "y.jpg").write_bytes(b"\xff\xd8 a truncated JPEG")
    created = CliRunner().invoke(cli, ["search", "dcgan", "--budget", "tiny", "--dataset", f"folder:{other}",
                                       "--trials", "0"])
    assert created.exit_code == 0, created.output + repr(created.exception)
    text = " ".join(created.output.split())
    assert text.count("skipped 1 of 13 files") == 1 and "y.jpg" in text


def test_folder_with_no_readable_image(genas_home, tmp_path):
    folder = tmp_path / "stray"
    folder.mkdir()
    (folder / "x.png").write_text("not an image")
    line = _one_line_error(CliRunner().invoke(cli, ["search", "dcgan", "--budget", "tiny", "--dataset",
                                                    f"folder:{folder}"]))
    assert "no readable image" in line and "x.png" in line
    assert _no_study_written(genas_home)
    line = _one_line_error(CliRunner().invoke(cli, ["eval", "--fake", str(folder)]))
    assert "no readable image" in line


def test_truncated_npz(genas_home, tmp_path):
    import numpy as np

    path = tmp_path / "images.npz"
    np.savez_compressed(path, images=np.zeros((64, 16, 16), np.uint8))
    path.write_bytes(path.read_bytes()[:200])
    line = _one_line_error(CliRunner().invoke(cli, ["search", "dcgan", "--budget", "tiny", "--dataset",
                                                    f"npz:{path}"]))
    assert str(path) in line and "truncated" in line
    assert _no_study_written(genas_home)


@pytest.mark.parametrize("args, option", [
    (["search", "dcgan", "--budget", "tiny", "--trials", "-3"], "--trials"),
    (["search", "dggan", "--budget", "tiny", "--top-k", "0"], "--top-k"),
    (["search", "dcgan", "--budget", "tiny", "--timeout", "0"], "--timeout"),
    (["search", "dcgan", "--budget", "tiny", "--seed", "-1"], "--seed"),
    (["worker", "nosuchstudy", "--trials", "0"], "--trials"),
    (["worker", "nosuchstudy", "--total-trials", "-1"], "--total-trials"),
    (["worker", "nosuchstudy", "--timeout", "-5"], "--timeout"),
    (["sample", "models:/genas-nosuch@champion", "-n", "0"], "--num"),
    (["eval", "--fake", "nowhere", "-n", "1"], "--num"),
    (["serve", "models:/genas-nosuch@champion", "--workers", "0"], "--workers"),
    (["server", "--workers", "0"], "--workers"),
    (["ui", "--port", "0"], "--port"),
])
def test_counts_out_of_range_are_refused_before_anything_is_written(genas_home, monkeypatch, args, option):
    def started(*args, **kwargs):  # were the value let through, `server` and `ui` would run until killed
        raise AssertionError(f"a child process was started: {args}")

    monkeypatch.setattr(subprocess, "call", started)
    line = _one_line_error(CliRunner().invoke(cli, args))
    assert option in line and "range" in line
    assert _no_study_written(genas_home)
    assert not (genas_home / "mlflow.db").exists()
