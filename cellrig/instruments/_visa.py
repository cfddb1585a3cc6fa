"""VISA connection details shared by every driver."""

import socket

from pymeasure.adapters import VISAAdapter
from pyvisa import constants


def tune_socket(adapter: object) -> None:
    """Send each command at once on raw TCP sockets (no Nagle delay between writes).

    Without TCP_NODELAY a write that follows an unanswered write waits for the peer's
    delayed ACK (~40 ms on Linux): programming a 400-step sequence would take 16 s.
    """
    if not isinstance(adapter, VISAAdapter) or not str(adapter.connection.resource_name).upper().endswith("::SOCKET"):
        return
    conn = adapter.connection
    try:
        conn.set_visa_attribute(constants.ResourceAttribute.tcpip_nodelay, constants.VI_TRUE)
    except Exception:
        # pyvisa-py ≤ 0.8 registers the wrong setter for VI_ATTR_TCPIP_NODELAY; set it on its socket.
        sock = getattr(conn.visalib.sessions.get(conn.session), "interface", None)
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
