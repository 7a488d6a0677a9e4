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
