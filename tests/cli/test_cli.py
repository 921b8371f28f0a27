import json

import pytest

import theradose
from theradose.cli import cli, main


def test_version(capsys):
    assert main(["--version"]) == 0
    assert theradose.__version__ in capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_every_subcommand_has_help(name, capsys):
    assert main([name, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Usage: theradose {name}")


def test_info_json_lists_dependencies(capsys):
    assert main(["info", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["theradose"] == theradose.__version__
    assert data["dependencies"]["pydicom"] is not None


def test_unknown_option_exits_2(capsys):
    assert main(["info", "--bogus"]) == 2
    assert "No such option" in capsys.readouterr().err


def test_warnings_are_one_line(capsys):
    import warnings

    from theradose.errors import TheradoseWarning

    @cli.command("_warn_probe", hidden=True)
    def _probe():
        warnings.warn("a.dcm: Units: odd value", TheradoseWarning, stacklevel=1)

    try:
        assert main(["_warn_probe"]) == 0
    finally:
        del cli.commands["_warn_probe"]
        warnings.showwarning = warnings._showwarning_orig
    assert capsys.readouterr().err == "warning: a.dcm: Units: odd value\n"
