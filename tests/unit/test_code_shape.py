"""The code's shape, measured: class and function sizes, the layering, the settings
declared once (KernelConfig) and what is derived from them."""

import ast
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

from traitlets import Unicode

import distrokernels
from distrokernels import config
from distrokernels.cli import build_parser

PACKAGE = Path(distrokernels.__file__).parent
REPOSITORY = PACKAGE.parent
MAX_CLASS_LINES = 300
MAX_FUNCTION_LINES = 60


def _definitions() -> list[tuple[str, ast.AST]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                found.append((f"{path.relative_to(REPOSITORY)}:{node.lineno} {node.name}", node))
    return found


def _lines(node: ast.AST) -> int:
    return node.end_lineno - node.lineno + 1  # type: ignore[attr-defined,operator]


def test_no_class_is_over_300_lines_and_no_function_over_60():
    too_long = [
        f"{where} ({_lines(node)} lines)"
        for where, node in _definitions()
        if _lines(node)
        > (MAX_CLASS_LINES if isinstance(node, ast.ClassDef) else MAX_FUNCTION_LINES)
    ]
    assert not too_long


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--config", "pyproject.toml"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)},
    )


def test_the_layers_hold_and_an_upward_import_breaks_them(tmp_path):
    shutil.copytree(PACKAGE, tmp_path / "distrokernels", ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copy(REPOSITORY / "pyproject.toml", tmp_path)
    kept = _lint_imports(tmp_path)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    # engine/ importing the provisioner: the lowest layers reaching for the kernel's life cycle
    base = tmp_path / "distrokernels" / "engine" / "_base.py"
    base.write_text(base.read_text() + "\nfrom .. import provisioner  # noqa\n")
    broken = _lint_imports(tmp_path)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "distrokernels.engine._base -> distrokernels.provisioner" in broken.stdout
    assert "BROKEN" in broken.stdout


def test_every_module_has_its_place_in_the_layers():
    """A module the contract does not name is not checked at all: each one is named, or
    its package is (engine/, cli/); a package's __init__ that imports nothing needs not."""
    import tomllib

    layers = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())["tool"]["importlinter"]
    named = {
        module.strip()
        for layer in layers["contracts"][0]["layers"]
        for module in layer.replace(":", "|").split("|")
    }
    unnamed = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(REPOSITORY).with_suffix("").parts
        dotted = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        prefixes = {".".join(parts[:depth]) for depth in range(2, len(parts) + 1)}
        imports = any(
            isinstance(node, ast.Import | ast.ImportFrom)
            for node in ast.walk(ast.parse(path.read_text()))
        )
        if dotted != "distrokernels" and imports and not (prefixes & named):
            unnamed.append(dotted)
    assert not unnamed, f"name these in [tool.importlinter]'s layers: {unnamed}"


class _WithGpus(config.KernelConfig):
    gpus = Unicode("", help="GPUs the kernel may use, e.g. all.").tag(
        config=True, cli="--gpus", metavar="GPUS"
    )


def test_a_new_setting_is_one_declaration_the_cli_and_the_docs_table_derive_from():
    options = {option.flag: option for option in config.cli_options(_WithGpus)}
    assert options["--gpus"].kwargs["help"] == "GPUs the kernel may use, e.g. all."
    assert options["--gpus"].kwargs["metavar"] == "GPUS"
    assert "| `gpus` | `--gpus` |  | GPUs the kernel may use, e.g. all. |" in config.settings_table(
        _WithGpus
    )
    assert config.config_from_options({"gpus": "all", "memory": None}, _WithGpus) == {"gpus": "all"}
    assert "--gpus" not in {option.flag for option in config.cli_options()}


def test_install_offers_every_setting_tagged_for_the_cli_with_its_help_and_default():
    install = build_parser()._subparsers._group_actions[0].choices["install"]  # type: ignore[union-attr]
    actions = {action.dest: action for action in install._actions}
    for option in config.cli_options():
        action = actions[option.trait]
        assert option.flag in action.option_strings
        assert action.help == option.kwargs["help"]
    assert actions["pids_limit"].help.endswith(f"(default: {config.DEFAULT_PIDS_LIMIT}).")
    assert actions["network_mode"].choices == ["bridge", "none", "host"]


def _docs_hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", REPOSITORY / "docs" / "hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    return hooks


def test_the_docs_pages_of_settings_and_commands_are_generated_from_the_code():
    hooks = _docs_hooks()
    settings = hooks.expand((REPOSITORY / "docs" / "settings.md").read_text())
    assert config.settings_table() in settings
    commands = hooks.expand((REPOSITORY / "docs" / "cli.md").read_text())
    assert build_parser().format_help() in commands
    for option in config.cli_options():
        assert option.flag in commands


def test_an_interrupted_command_says_what_it_leaves_behind(monkeypatch, capsys):
    from distrokernels.cli import main, notebooks

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(notebooks, "cmd_pin", interrupted)
    assert main(["pin", "course/"]) == 130
    assert capsys.readouterr().err == (
        "distrokernels: interrupted: the notebooks listed above are pinned; "
        "the others are unchanged\n"
    )


def test_jupyter_distrokernels_is_the_same_command():
    jupyter = Path(sys.executable).with_name("jupyter")
    result = subprocess.run(
        [str(jupyter), "distrokernels", "--version"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"distrokernels {distrokernels.__version__}"
