"""`distrokernels test`: notebooks x distro kernels, run for real and compared.

The three Debian releases are installed side by side (Python 3.9, 3.11 and 3.13, each
with its own SQLite), so the example notebook really differs across them.
"""

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from xml.etree import ElementTree

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from playwright import sync_api

from .conftest import run_cli
from .test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS

EXAMPLE = Path(__file__).resolve().parents[2] / "notebooks" / "04-across-userlands.ipynb"
KERNELS = "distro-debian-11,distro-debian-12,distro-debian-13"


@pytest.fixture
def three(suite_kernels) -> str:
    for base, install in suite_kernels.items():
        assert install.returncode == 0, f"{base}: {install.stderr}"
    return KERNELS


def notebook(path: Path, *sources: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(new_notebook(cells=[new_code_cell(source) for source in sources]), path)
    return path


def distrokernels_test(*args: str):
    result = run_cli("test", *args)
    return result, (json.loads(result.stdout) if "--json" in args else None)


def results(report: dict) -> dict:
    return {k: v for entry in report["notebooks"] for k, v in entry["results"].items()}


def test_the_example_differs_in_exactly_the_cells_whose_outputs_really_differ(three):
    result, report = distrokernels_test(str(EXAMPLE), "--kernels", three, "--json")
    assert result.returncode == 0, result.stderr  # differences fail only with --strict
    by_kernel = results(report)
    assert by_kernel["distro-debian-11"]["status"] == "passed"  # the reference
    for kernel in ("distro-debian-12", "distro-debian-13"):
        assert by_kernel[kernel]["status"] == "differs (2 cells)"
        assert [d["cell"] for d in by_kernel[kernel]["differences"]] == [2, 3]  # Python, SQLite
    python = by_kernel["distro-debian-13"]["differences"][0]["diff"]
    assert "-stdout: Python 3.9" in python and "+stdout: Python 3.13" in python
    strict, _ = distrokernels_test(str(EXAMPLE), "--kernels", three, "--strict")
    assert strict.returncode == 1
    header = strict.stdout.splitlines()[0]
    assert "distro-debian-11 (Debian GNU/Linux 11 (bullseye), Python 3.9" in header


def test_a_notebook_that_fails_on_one_userland_fails_there_only(three, tmp_path):
    path = notebook(
        tmp_path / "new.ipynb",
        "print(1 + 1)",
        'import sys\nassert sys.version_info < (3, 12), "too new"',
    )
    result, report = distrokernels_test(str(path), "--kernels", three, "--json")
    assert result.returncode == 1
    assert {k: v["status"] for k, v in results(report).items()} == {
        "distro-debian-11": "passed",
        "distro-debian-12": "passed",
        "distro-debian-13": "failed at cell 2: AssertionError",
    }
    table, _ = distrokernels_test(str(path), "--kernels", three)
    assert table.stdout.splitlines()[1].split()[1:] == [
        "passed", "passed", "failed", "at", "cell", "2:", "AssertionError",
    ]  # fmt: skip


def test_a_cell_that_runs_too_long_is_a_timeout_and_its_kernel_is_gone(three, engine, tmp_path):
    path = notebook(tmp_path / "slow.ipynb", "print('started')", "import time\ntime.sleep(120)")
    before = {c.id for c in engine.kernel_containers()}
    result, report = distrokernels_test(
        str(path), "--kernels", "distro-debian-12", "--timeout", "3", "--json"
    )
    assert result.returncode == 1
    assert results(report)["distro-debian-12"]["status"] == "timeout at cell 2"
    assert {c.id for c in engine.kernel_containers()} <= before


def test_outputs_that_differ_without_meaning_pass_once_sanitised(three, tmp_path):
    path = notebook(
        tmp_path / "noise.ipynb", "print(object())", "import random\nprint(random.random())"
    )
    result, report = distrokernels_test(str(path), "--kernels", three, "--json")
    assert [d["cell"] for d in results(report)["distro-debian-12"]["differences"]] == [2]
    sanitize = tmp_path / "sanitize.cfg"
    sanitize.write_text(textwrap.dedent("[random]\nregex: 0\\.\\d+\nreplace: FLOAT\n"))
    result, report = distrokernels_test(
        str(path), "--kernels", three, "--sanitize-with", str(sanitize), "--strict"
    )
    assert result.returncode == 0, result.stdout


def test_two_runs_at_once_in_one_kernel_do_not_see_each_others_files(three, tmp_path):
    code = (
        "import os, time\n"
        "assert not os.path.exists('mine.txt'), 'another run wrote here'\n"
        "open('mine.txt', 'w').write('x')\n"
        "time.sleep(3)\n"
        "print(sorted(os.listdir('.')))"
    )
    first = notebook(tmp_path / "course" / "a.ipynb", code)
    second = notebook(tmp_path / "course" / "b.ipynb", code)
    result, report = distrokernels_test(
        str(first), str(second), "--kernels", "distro-debian-12", "--jobs", "2", "--json"
    )
    assert result.returncode == 0, result.stdout
    assert [entry["results"]["distro-debian-12"]["status"] for entry in report["notebooks"]] == [
        "passed", "passed",
    ]  # fmt: skip
    assert not (tmp_path / "course" / "mine.txt").exists()  # nor in the user's own folder


def test_against_the_stored_outputs_and_json_matches_the_table(three, tmp_path):
    path = notebook(tmp_path / "stored.ipynb", "import sys\nprint(sys.version_info[:2])")
    ran = run_cli("run", str(path), "--kernel", "distro-debian-12")
    assert ran.returncode == 0, ran.stderr
    _, report = distrokernels_test(str(path), "--kernels", three, "--against-stored", "--json")
    statuses = {k: v["status"] for k, v in results(report).items()}
    assert statuses == {
        "distro-debian-11": "differs (1 cell)",
        "distro-debian-12": "passed",
        "distro-debian-13": "differs (1 cell)",
    }
    table, _ = distrokernels_test(str(path), "--kernels", three, "--against-stored")
    assert table.stdout.splitlines()[1].split()[1:] == [
        "differs", "(1", "cell)", "passed", "differs", "(1", "cell)",
    ]  # fmt: skip


def test_an_unknown_kernel_is_one_line_with_its_fix(three):
    result, _ = distrokernels_test(str(EXAMPLE), "--kernels", "distro-nothing-*")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "distrokernels: error: no installed distro kernel is 'distro-nothing-*': "
        "see `distrokernels list`"
    )


def test_pytest_runs_each_notebook_once_per_kernel_and_names_them_in_junit(three, tmp_path):
    course = tmp_path / "course"
    notebook(
        course / "lesson.ipynb",
        "print(1)",
        'import sys\nassert sys.version_info < (3, 12), "too new"',
    )
    shutil.copy(EXAMPLE, course)
    junit = tmp_path / "junit.xml"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "--distrokernels=distro-debian-11,distro-debian-13", "course", f"--junitxml={junit}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout
    cases = {
        (case.get("classname"), case.get("name")): case
        for case in ElementTree.parse(junit).getroot().iter("testcase")
    }
    assert sorted(cases) == [
        ("course.04-across-userlands.ipynb", "distro-debian-11"),
        ("course.04-across-userlands.ipynb", "distro-debian-13"),
        ("course.lesson.ipynb", "distro-debian-11"),
        ("course.lesson.ipynb", "distro-debian-13"),
    ]
    failed = [key for key, case in cases.items() if case.find("failure") is not None]
    assert failed == [("course.lesson.ipynb", "distro-debian-13")]
    failure = cases[failed[0]].find("failure")
    assert "AssertionError: too new" in failure.text
    assert "lesson.ipynb in distro-debian-13: failed at cell 2: AssertionError" in failure.text


def test_the_html_report_shows_the_matrix_and_a_highlighted_difference_in_chromium(three, tmp_path):
    report = tmp_path / "report.html"
    result, _ = distrokernels_test(str(EXAMPLE), "--kernels", three, "--report", str(report))
    assert result.returncode == 0, result.stderr
    requested = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.on("request", lambda request: requested.append(request.url))
        page.goto(report.as_uri())
        assert page.locator("table.matrix td.passed").count() == 1
        assert page.locator("table.matrix td.differs").count() == 2
        assert page.locator("table.matrix th", has_text="Debian GNU/Linux 13").count() == 1
        highlighted = page.locator("table.diff span.diff_chg")
        assert highlighted.first.is_visible()
        assert "13" in " ".join(highlighted.all_inner_texts())  # Python 3.13, where 11 had 3.9
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "test-report.png"), full_page=True)
        browser.close()
    assert requested == [report.as_uri()]  # self-contained: nothing else was fetched
