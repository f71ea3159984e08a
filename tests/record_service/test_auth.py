"""The signing key file: made atomically on first use (one key whoever races for it), refused with a clear error
(exit 2 on the command line) when it is open to others, empty, too short, not text or not a file; never replaced."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import SEGUR
from record_service.auth import KeyFileError, load_or_create_key
from tests.races import race

_PATIENT = ("--patient", "285067505612354")


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_missing_key_is_made_once_mode_0600_and_kept(tmp_path):
    path = tmp_path / "k.key"
    key = load_or_create_key(path, create_parents=False)
    assert len(key) == 64 and int(key, 16) >= 0
    assert _mode(path) == 0o600
    assert load_or_create_key(path) == key
    assert os.listdir(tmp_path) == ["k.key"]  # no temporary file left beside it


def test_the_default_location_gets_its_directory_a_named_one_must_have_it(tmp_path):
    assert len(load_or_create_key(tmp_path / "made" / "k.key")) == 64
    with pytest.raises(KeyFileError, match="does not exist"):
        load_or_create_key(tmp_path / "missing" / "k.key", create_parents=False)
    assert not (tmp_path / "missing").exists()


def _key(path: str) -> bytes:
    return load_or_create_key(path, create_parents=False)


def test_concurrent_first_use_gives_everyone_the_same_complete_key(tmp_path):
    for attempt in range(5):
        path = tmp_path / f"k{attempt}.key"
        keys = race(_key, str(path), processes=8, timeout=30)
        assert set(keys) == {path.read_bytes().strip()}
    assert sorted(os.listdir(tmp_path)) == [f"k{attempt}.key" for attempt in range(5)]


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o602])
def test_a_key_open_to_group_or_others_is_refused(tmp_path, mode):
    path = tmp_path / "k.key"
    key = load_or_create_key(path)
    path.chmod(mode)
    with pytest.raises(KeyFileError, match=f"open to group or others \\(mode {mode:03o}\\).*chmod 600 {path}"):
        load_or_create_key(path)
    assert path.read_bytes().strip() == key and _mode(path) == mode  # left as it was


@pytest.mark.parametrize("content, problem", [(b"", "is empty"), (b"\n  \n", "is empty"),
                                              (b"0123456789abcdef\n", "too short \\(16 characters"),
                                              (b"\xff\xfe" * 40, "not text")])
def test_an_empty_short_or_binary_key_is_refused_never_replaced(tmp_path, content, problem):
    path = tmp_path / "k.key"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(KeyFileError, match=problem):
        load_or_create_key(path)
    assert path.read_bytes() == content


def test_a_key_path_that_is_not_a_file_is_refused(tmp_path):
    (tmp_path / "dir.key").mkdir()
    with pytest.raises(KeyFileError, match="not a regular file"):
        load_or_create_key(tmp_path / "dir.key")
    (tmp_path / "file").write_text("x")
    with pytest.raises(KeyFileError, match="not a regular file|cannot make"):
        load_or_create_key(tmp_path / "file" / "k.key")


def test_an_unreadable_key_is_refused():
    """Root reads a file whatever its mode: as root (CI), the read is tried by a child that dropped to nobody."""
    directory = Path(tempfile.mkdtemp(prefix="segur-key-"))
    try:
        directory.chmod(0o711)
        path = directory / "k.key"
        load_or_create_key(path)
        path.chmod(0o000)
        if os.geteuid() != 0:
            with pytest.raises(KeyFileError, match="cannot read"):
                load_or_create_key(path)
            return
        child = os.fork()
        if child == 0:  # the child: nobody, then the same call; 0 if it was refused as unreadable
            try:
                os.setgid(65534)
                os.setuid(65534)
                load_or_create_key(path)
                os._exit(1)
            except KeyFileError as error:
                os._exit(0 if "cannot read" in str(error) else 2)
            except BaseException:
                os._exit(3)
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _segur(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([SEGUR, *args], capture_output=True, text=True, timeout=60)


def test_the_commands_refuse_a_bad_key_with_exit_2_and_no_traceback(tmp_path):
    open_key = tmp_path / "open.key"
    load_or_create_key(open_key)
    open_key.chmod(0o644)
    empty_key = tmp_path / "empty.key"
    empty_key.touch(0o600)
    for args, expected in [(("token", "--key", str(open_key), *_PATIENT), "chmod 600"),
                           (("token", "--key", str(empty_key), *_PATIENT), "is empty"),
                           (("token", "--key", str(tmp_path / "no" / "k.key"), *_PATIENT), "does not exist"),
                           (("serve", "--key", str(open_key), "--port", "0", "--data-dir", str(tmp_path / "data")),
                            "chmod 600")]:
        proc = _segur(*args)
        assert proc.returncode == 2, proc.stderr
        assert expected in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "data").exists() and not (tmp_path / "no").exists()  # nothing written
    assert empty_key.read_bytes() == b""


def test_concurrent_segur_token_on_a_new_key_all_succeed_with_one_key(tmp_path):
    path = tmp_path / "k.key"
    procs = [subprocess.Popen([SEGUR, "token", "--key", str(path), *_PATIENT], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outputs = [proc.communicate(timeout=60) for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 4, outputs
    import jwt

    key = path.read_bytes().strip()
    for out, _ in outputs:  # every token is signed by the one key on disk
        assert jwt.decode(out.strip(), key, algorithms=["HS256"], options={"verify_aud": False})["ins"] == _PATIENT[1]
