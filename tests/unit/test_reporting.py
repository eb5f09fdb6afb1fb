"""How output reaches a person: control codes cleaned, tables fitted, phases logged."""

import io

from distrokernels import reporting
from distrokernels.reporting import Report, clean, table


def test_a_tools_colour_codes_and_carriage_returns_never_reach_the_log():
    assert clean("\x1b[91mdebconf: delaying package configuration\x1b[0m") == (
        "debconf: delaying package configuration"
    )
    assert clean("(Reading database ... 5%\r(Reading database ... 100%") == (
        "(Reading database ... 100%"
    )


def test_a_table_fits_80_columns_by_eliding_long_cells_in_the_middle():
    header = ["NAME", "IMAGE", "STATUS"]
    image = "distrokernels/debian-12:" + "0123456789abcdef" * 4
    rows = [["distro-debian-12", image, "built"]]
    lines = table(header, rows, width=80).splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "distrokernels/deb" in lines[1] and "…" in lines[1] and lines[1].count("cdef") >= 1
    assert "distro-debian-12" in lines[1] and lines[1].rstrip().endswith("built")
    assert table(header, rows).splitlines()[1].count(image) == 1  # no width: whole


def test_plain_output_is_one_line_per_finished_phase_and_the_log_has_everything(tmp_path):
    stream = io.StringIO()
    report = Report("auto", tmp_path / "install.log", stream)  # not a terminal: plain
    reporting.phase(report, "building the layer")
    report("Step 1/3 : FROM debian")
    report("\x1b[91mdebconf: noise\x1b[0m")
    reporting.note(report, "warning: something to see")
    report.finish(["installed it"])
    shown = stream.getvalue().splitlines()
    assert shown[0] == "  warning: something to see"
    assert shown[1].startswith("building the layer (") and shown[1].endswith(" s)")
    assert shown[2] == "installed it"
    assert "\x1b" not in stream.getvalue()
    log = (tmp_path / "install.log").read_text()
    assert "Step 1/3 : FROM debian\ndebconf: noise\n" in log and "\x1b" not in log


def test_a_failure_shows_its_phase_the_tail_of_its_output_and_the_log(tmp_path):
    stream = io.StringIO()
    report = Report("auto", tmp_path / "install.log", stream)
    reporting.phase(report, "building the extras layer")
    for number in range(50):
        report(f"line {number}")
    report.fail()
    shown = stream.getvalue().splitlines()
    assert shown[0] == "failed: building the extras layer"
    assert shown[1] == "  | line 20" and shown[-2] == "  | line 49"  # the last 30
    assert shown[-1] == f"the full log: {tmp_path / 'install.log'}"


def test_an_input_refused_before_any_work_leaves_no_log_and_says_nothing_more(tmp_path):
    stream = io.StringIO()
    Report("auto", tmp_path / "install.log", stream).fail()
    assert stream.getvalue() == "" and not (tmp_path / "install.log").exists()
