"""The CLI: fast help, clear one-line errors for user mistakes."""
import subprocess
import sys

from harness.cli import main


def test_help_lists_subcommands_without_heavy_imports():
    code = ("import sys; from harness.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'transformers', 'ray', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    help_text = subprocess.run([sys.executable, "-m", "harness", "--help"], capture_output=True,
                               text=True, check=True).stdout
    for command in ("data", "run"):
        assert command in help_text


def test_unknown_model_suggests_the_close_name(capsys):
    assert main(["run", "--model", "sasrek", "--dataset", "beauty"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown model 'sasrek'") and "Did you mean 'sasrec'?" in err
    assert len(err.splitlines()) == 1


def test_unknown_dataset_and_bad_override(capsys):
    assert main(["data", "stats", "--dataset", "beuaty"]) == 2
    assert "Did you mean 'beauty'?" in capsys.readouterr().err
    assert main(["run", "--model", "pop", "--dataset", "beauty", "epochs"]) == 2
    assert "not key=value" in capsys.readouterr().err
    assert main(["run", "--model", "sasrec", "--dataset", "beauty", "hiden=8"]) == 2
    assert "Did you mean 'hidden'?" in capsys.readouterr().err
