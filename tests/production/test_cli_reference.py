"""README's command-line reference is generated from the parser (make docs):
this fails when a flag changes and the README was not regenerated."""
from iodine_py import cli
from tests.server import REPO_ROOT


def test_readme_cli_reference_matches_the_parser():
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(cli.README_START) + len(cli.README_START)
    section = text[start:text.index(cli.README_END)].strip()
    assert section == cli.markdown_reference().strip(), "README is stale: run `make docs`"


def test_every_flag_is_in_the_reference():
    ref = cli.markdown_reference()
    for action in cli.build_parser()._actions:
        for opt in action.option_strings:
            if opt not in ("-h", "--help", "-V", "--version"):
                assert f"`{opt}`" in ref, opt
