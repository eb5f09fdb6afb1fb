"""Which connection files the argv launcher's bridge honours (no kernel, no traffic)."""

import pytest
from jupyter_client.session import Session

from distrokernels.bridge import DELIMITER, check_client_info, endpoint, is_shutdown_request
from distrokernels.errors import InvalidInput

PORTS = {"shell_port": 5001, "iopub_port": 5002, "stdin_port": 5003, "control_port": 5004,
         "hb_port": 5005}  # fmt: skip


@pytest.mark.parametrize("ip", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_addresses_are_served(ip):
    check_client_info({"transport": "tcp", "ip": ip, "key": "k", **PORTS})


@pytest.mark.parametrize("ip", ["0.0.0.0", "::", "10.1.2.3", "192.168.1.10", "myhost", "*"])
def test_a_kernel_is_never_served_beyond_loopback(ip):
    with pytest.raises(InvalidInput, match="only served on loopback"):
        check_client_info({"transport": "tcp", "ip": ip, "key": "k", **PORTS})


def test_ipc_connection_files_are_served_at_their_paths():
    info = {"transport": "ipc", "ip": "/run/user/1000/kernel-x", "key": "k", **PORTS}
    check_client_info(info)
    assert endpoint(info, "hb") == "ipc:///run/user/1000/kernel-x-5005"


def test_a_connection_file_without_ports_is_refused_in_one_line():
    with pytest.raises(InvalidInput, match=r"lacks shell_port, .*iopub_port, key:"):
        check_client_info({"transport": "tcp", "ip": "127.0.0.1"})


def test_an_unknown_transport_is_refused():
    with pytest.raises(InvalidInput, match="transport 'udp'"):
        check_client_info({"transport": "udp", "ip": "127.0.0.1", "key": "k", **PORTS})


def test_a_shutdown_request_is_recognised_among_the_control_channels_messages():
    session = Session(key=b"k")
    request = session.serialize(session.msg("shutdown_request", {"restart": False}))
    reply = session.serialize(session.msg("shutdown_reply", {"restart": False}))
    assert is_shutdown_request([b"client-id", *request])
    assert not is_shutdown_request([b"client-id", *reply])
    assert not is_shutdown_request([b"no delimiter", b"{}"])
    assert not is_shutdown_request([DELIMITER, b"sig", b"\xff not json"])
    assert not is_shutdown_request([DELIMITER, b"sig", b"[1, 2]"])
    padded = b'{"msg_type": "shutdown_request", "pad": "' + b"x" * 10_000 + b'"}'
    assert not is_shutdown_request([DELIMITER, b"sig", padded])  # a kernel's, not parsed
