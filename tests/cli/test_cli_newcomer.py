"""What a newcomer meets first: --version, the demo's help, Ctrl-C hints, progress output in logs vs terminals."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from tqdm import tqdm

import dualseg
import dualseg.data.fetch as fetch_module
import dualseg.progress as progress_module
from dualseg.cli import main
from dualseg.progress import PlainProgress, progress_bar

REPO = Path(__file__).resolve().parents[2]


def test_version_matches_the_package_metadata(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    version = re.search(r'^version = "(.+)"$', (REPO / "pyproject.toml").read_text(), re.M).group(1)
    assert dualseg.__version__ == version and capsys.readouterr().out.startswith(f"dualseg {version} (torch ")


def test_demo_help_says_what_it_does_and_how_long(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "embedded ISBI 2012 sample" in text or "ISBI 2012 sample shipped with dualseg" in text
    assert "About 3-5 minutes on a 2-core CPU" in text and "--minutes (2.5)" in text


def test_ctrl_c_during_fetch_data_gives_the_download_hint_not_the_training_one(tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(fetch_module, "fetch_dataset", interrupted)
    assert main(["fetch-data", "isbi2012", "--dest", str(tmp_path / "isbi")]) == 130
    err = capsys.readouterr().err
    assert "the download resumes from its .part file" in err and "--resume" not in err


def test_plain_progress_in_logs_bars_on_terminals(capsys, monkeypatch):
    monkeypatch.setattr(progress_module, "interactive", lambda: False)
    bar = progress_bar(range(3), desc="predict", unit="file")
    assert isinstance(bar, PlainProgress)
    bar.every_s = 0.0  # a line at every step (normally at most one per PLAIN_EVERY_S seconds)
    bar.set_postfix(loss="0.5")
    assert list(bar) == [0, 1, 2]
    out, err = capsys.readouterr()
    assert out.splitlines()[-1].startswith("predict: 3/3 file (100%)") and out.endswith("loss=0.5\n")
    assert "\r" not in out + err and err == ""

    quiet = progress_bar(range(3), desc="x", enabled=False)
    assert list(quiet) == [0, 1, 2] and capsys.readouterr() == ("", "")
    monkeypatch.setattr(progress_module, "interactive", lambda: True)
    assert isinstance(progress_bar(range(3)), tqdm)
    assert "3.00MB/5.00MB (60%)" in PlainProgress(total=5_000_000, initial=3_000_000, unit="B",
                                                  unit_scale=True).line(1.0)


def test_demo_bad_input_is_one_line(tmp_path, capsys):
    assert main(["demo", "--minutes", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: --minutes must be > 0, got 0.0"
    assert main(["demo", "--data", str(tmp_path / "none")]) == 2
    assert "leave --data out to use the embedded sample" in capsys.readouterr().err
