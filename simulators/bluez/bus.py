"""A private ``dbus-daemon`` for the virtual BlueZ: started in milliseconds, owned by us.

bleak finds BlueZ on the *system* bus, and honours ``DBUS_SYSTEM_BUS_ADDRESS``. So we start a
daemon of our own with a config that lets everyone own and call everything, on a socket in a
short ``/tmp`` directory (``sun_path`` is limited to 108 bytes), and hand out its address.
Reading the one line ``--print-address`` writes is the readiness signal: no polling.

The same directory gets a ``bin/bluetoothctl`` that prints ``bluetoothctl: 5.72``. bleak runs
``bluetoothctl --version`` once per process and refuses to connect below 5.55; put ``bin_dir``
first on ``PATH`` to answer it (a missing one only costs a WARNING in bleak's log).
"""

from __future__ import annotations

import asyncio
import os
import selectors
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Final

from simulators.bluez.errors import BusUnavailable

START_TIMEOUT_S: Final = 5.0
STOP_TIMEOUT_S: Final = 5.0

_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir={socket_dir}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
"""

_FAKE_BLUETOOTHCTL = """#!/bin/sh
# Written by simulators.bluez.bus: bleak checks the BlueZ version with `bluetoothctl --version`.
echo "bluetoothctl: 5.72"
"""

#: Socket paths of real system buses: the simulator must never be pointed at one of these.
SYSTEM_BUS_SOCKETS: Final = ("/run/dbus/system_bus_socket", "/var/run/dbus/system_bus_socket")


def find_dbus_daemon() -> str | None:
    """Path of the ``dbus-daemon`` binary, or None when it is not installed."""
    found = shutil.which("dbus-daemon")
    if found:
        return found
    for candidate in ("/usr/bin/dbus-daemon", "/bin/dbus-daemon", "/usr/local/bin/dbus-daemon"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def is_system_bus(address: str) -> bool:
    """True when ``address`` points at the machine's real system bus."""
    return any(sock in address for sock in SYSTEM_BUS_SOCKETS)


class PrivateBus:
    """One private dbus-daemon process. Use as a context manager or call start()/stop().

    ``address`` is what to export as ``DBUS_SYSTEM_BUS_ADDRESS``; ``bin_dir`` holds the fake
    ``bluetoothctl``. ``detach`` starts the daemon in a session of its own, so that a Ctrl-C
    at a terminal (sent to the whole foreground process group) does not kill the bus under
    the service before it has left cleanly; the owner must then call :meth:`stop`. Tests
    leave it attached, so an interrupted test run takes its daemon along.
    """

    def __init__(self, daemon: str | None = None, *, detach: bool = False) -> None:
        self._daemon = daemon
        self._detach = detach
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None
        self.address = ""

    @property
    def bin_dir(self) -> Path:
        if self._dir is None:
            raise BusUnavailable("the bus has not been started")
        return self._dir / "bin"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> PrivateBus:
        """Start the daemon and return once it listens (about 5-10 ms)."""
        if self._proc is not None:
            return self
        daemon = self._daemon or find_dbus_daemon()
        if daemon is None:
            raise BusUnavailable("the dbus-daemon program is not installed")
        work = Path(tempfile.mkdtemp(prefix="vbz-", dir="/tmp"))
        self._dir = work
        (work / "bin").mkdir()
        fake = work / "bin" / "bluetoothctl"
        fake.write_text(_FAKE_BLUETOOTHCTL)
        fake.chmod(0o755)
        config = work / "bus.conf"
        config.write_text(_CONFIG.format(socket_dir=work))
        try:
            proc = subprocess.Popen(
                [daemon, f"--config-file={config}", "--nofork", "--nopidfile", "--print-address=1"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                start_new_session=self._detach,
            )
        except OSError as exc:
            shutil.rmtree(work, ignore_errors=True)
            raise BusUnavailable(f"{daemon} could not be run: {exc}") from exc
        self._proc = proc
        line = self._read_address_line(proc)
        if not line:
            err = self._stderr_text(proc)
            self.stop()
            raise BusUnavailable(f"{daemon} exited or did not print its address: {err or '?'}")
        self.address = line
        return self

    @staticmethod
    def _read_address_line(proc: subprocess.Popen[bytes]) -> str:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            if not sel.select(START_TIMEOUT_S):
                return ""
        return proc.stdout.readline().decode().strip()

    @staticmethod
    def _stderr_text(proc: subprocess.Popen[bytes]) -> str:
        if proc.poll() is None or proc.stderr is None:
            return ""
        return proc.stderr.read().decode(errors="replace").strip()

    def stop(self) -> None:
        """Terminate the daemon (killed after 5 s) and remove its directory."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(STOP_TIMEOUT_S)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        self.address = ""

    def __enter__(self) -> PrivateBus:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


async def start_private_bus(daemon: str | None = None) -> PrivateBus:
    """:meth:`PrivateBus.start` off the event loop, for async callers (the demo)."""
    return await asyncio.to_thread(PrivateBus(daemon).start)
