"""Finding free TCP ports and failing clearly on taken ones."""

from __future__ import annotations

import socket


class PortInUseError(RuntimeError):
    """A port the dev stack wants to bind is taken."""

    def __init__(self, host: str, port: int, what: str, env_var: str | None = None) -> None:
        message = f"port {port} ({what}) on {host} is already in use"
        if env_var:
            message += f"; set {env_var} to another port"
        super().__init__(message)
        self.host = host
        self.port = port
        self.what = what
        self.env_var = env_var


def _bind_address(host: str, port: int) -> tuple[socket.AddressFamily, tuple[str, int]]:
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    return family, (str(address[0]), int(address[1]))


# Ports this process handed out: the kernel may offer a just-closed port again, and two
# servers of one stack told the same port collide at bind time.
_GIVEN: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on `host` right now (another process may still take it).

    Never one this process already handed out, so the ports of one stack are distinct.
    """
    family, address = _bind_address(host, 0)
    for _ in range(100):
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.bind(address)
            port = int(sock.getsockname()[1])
        if port not in _GIVEN:
            _GIVEN.add(port)
            return port
    raise RuntimeError(f"no fresh free port on {host} after 100 tries")


def port_is_free(host: str, port: int) -> bool:
    """Whether a server could bind `host:port` now."""
    family, address = _bind_address(host, port)
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # Servers set SO_REUSEADDR too, so a port in TIME_WAIT counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError:
            return False
    return True


def ensure_port_free(host: str, port: int, what: str, *, env_var: str | None = None) -> None:
    """Raise PortInUseError naming `what` and the variable to change if the port is taken."""
    if not port_is_free(host, port):
        raise PortInUseError(host, port, what, env_var)
