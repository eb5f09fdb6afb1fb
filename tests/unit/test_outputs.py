"""Outputs compared across userlands: normalised, then compared cell by cell (no kernel)."""

import pytest

from distrokernels.errors import InvalidInput
from distrokernels.outputs import Sanitizer, comparable, differences


def cell(*outputs, tags=()):
    return {
        "cell_type": "code",
        "source": "x",
        "metadata": {"tags": list(tags)},
        "outputs": list(outputs),
    }


def stream(text, name="stdout"):
    return {"output_type": "stream", "name": name, "text": text}


def test_addresses_timings_and_uuids_are_normalised():
    clean = Sanitizer().clean
    assert clean("<object object at 0x7f3a2c1b4e70>") == "<object object at 0xADDRESS>"
    assert clean("Wall time: 1.25 s, 300 ms") == "Wall time: TIME, TIME"
    assert clean("kernel 4b9c1a2e-0f3d-4c5b-9a8e-7d6c5b4a3f2e") == "kernel UUID"


def test_an_nbval_sanitize_file_adds_its_replacements(tmp_path):
    path = tmp_path / "sanitize.cfg"
    path.write_text("[dates]\nregex: \\d{4}-\\d{2}-\\d{2}\nreplace: DATE\n")
    assert Sanitizer.from_file(path).clean("run on 2026-12-02") == "run on DATE"
    path.write_text("[broken]\nregex: (\n")
    with pytest.raises(InvalidInput, match=r"\[broken\]"):
        Sanitizer.from_file(path)


def test_streams_text_data_and_errors_become_comparable_lines():
    error = {
        "output_type": "error",
        "ename": "KeyError",
        "evalue": "'x'",
        "traceback": ["/usr/lib"],
    }
    result = {"output_type": "execute_result", "data": {"text/plain": "2", "image/png": "iVBOR\n"}}
    assert comparable([stream("a\nb\n"), result, error], Sanitizer()) == [
        "stdout: a", "stdout: b", "image/png: iVBOR", "text/plain: 2", "error: KeyError: 'x'",
    ]  # fmt: skip


def test_only_cells_whose_outputs_differ_are_reported_and_ignored_cells_are_skipped():
    reference = [
        cell(stream("3.9\n")),
        cell(stream("same\n")),
        cell(stream("a\n"), tags=["nbval-ignore-output"]),
    ]
    other = [
        cell(stream("3.11\n")),
        cell(stream("same\n")),
        cell(stream("b\n"), tags=["nbval-ignore-output"]),
    ]
    found = differences(reference, other, Sanitizer())
    assert [d.index for d in found] == [1]
    assert "-stdout: 3.9" in found[0].diff and "+stdout: 3.11" in found[0].diff


def test_a_run_folder_given_as_a_literal_is_normalised():
    sanitizer = (
        Sanitizer().with_literal("/tmp/run-a", "<folder>").with_literal("/tmp/run-b", "<folder>")
    )
    assert not differences(
        [cell(stream("/tmp/run-a\n"))], [cell(stream("/tmp/run-b\n"))], sanitizer
    )
