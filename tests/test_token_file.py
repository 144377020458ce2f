"""MAILER_TOKEN_FILE (`mailer.token_file`) is trusted only as mailer leaves it: a regular
file of the user mailer runs as, mode 600, not a symbolic link, in a folder nobody else can
write to; its lock file is never followed through a link. `mailer auth status` is run
against what a mistake or another user could leave there (the tests run as root, which
can give a file to another user with os.chown)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

from click.testing import Result
from typer.testing import CliRunner

from mailer.cli import app
from tests.conftest import cli_env, needed

ROOT = Path(__file__).resolve().parent.parent
RECORD = {"refresh_token": "rt-SECRET", "client_id": "c.apps", "client_secret": "cs-SECRET"}
NOBODY = 65534


def _keep(path: Path) -> Path:
    """A Google sign-in record as mailer writes it (mode 600, its folder 700)."""
    path.parent.mkdir(mode=0o700, exist_ok=True)
    path.write_text(json.dumps({"google": RECORD}), encoding="utf-8")
    path.chmod(0o600)
    return path


def _status(tmp_path: Path, token_file: Path) -> Result:
    env = cli_env(tmp_path, MAILER_TOKEN_FILE=str(token_file))
    return CliRunner().invoke(app, ["auth", "status"], env=env)


def _mailer(tmp_path: Path, token_file: Path, *prefix: str) -> subprocess.CompletedProcess[str]:
    """`mailer auth status` as a process (`prefix`: what runs it), given 30 s."""
    environ = {**os.environ, **cli_env(tmp_path, MAILER_TOKEN_FILE=str(token_file))}
    environ["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [*prefix, sys.executable, "-m", "mailer", "auth", "status"],
        cwd=tmp_path, env=environ, text=True, capture_output=True, timeout=30,
    )  # fmt: skip


def _refused(output: str, *said: str) -> None:
    assert "Error: " in output, output
    for part in said:
        assert part in output, output
    assert "remove it" not in output  # a valid sign-in is never to be deleted for this
    assert "SECRET" not in output
    assert "Traceback" not in output


def test_mailers_own_file_is_read(tmp_path: Path) -> None:
    token_file = _keep(tmp_path / "t.json")
    result = _status(tmp_path, token_file)
    assert result.exit_code == 0, result.output
    assert "google: signed in with the OAuth client 'c.apps'" in result.output
    assert "SECRET" not in result.output


def test_a_symbolic_link_as_the_token_file_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "t.json"
    link.symlink_to(_keep(tmp_path / "elsewhere.json"))
    result = _status(tmp_path, link)
    assert result.exit_code == 1
    _refused(result.output, "t.json is a symbolic link, which mailer does not follow")
    assert "point MAILER_TOKEN_FILE at the file itself" in result.output


def test_a_symbolic_link_as_the_lock_file_is_not_followed(tmp_path: Path) -> None:
    token_file = _keep(tmp_path / "t.json")
    target = tmp_path / "made-through-the-link"
    (tmp_path / "t.json.lock").symlink_to(target)
    result = _status(tmp_path, token_file)
    assert result.exit_code == 1
    _refused(result.output, "t.json.lock is a symbolic link")
    assert not target.exists()  # O_CREAT through the link would have made it


def test_a_file_of_another_user_is_refused_as_theirs(tmp_path: Path) -> None:
    token_file = _keep(tmp_path / "t.json")
    os.chown(token_file, NOBODY, NOBODY)  # (root can; root reads it all the same)
    result = _status(tmp_path, token_file)
    assert result.exit_code == 1
    _refused(
        result.output,
        f"t.json' belongs to 'nobody' (uid {NOBODY}), not to",
        f"(uid {os.geteuid()}) that mailer runs as. Run mailer as the user who signed in",
    )


def test_a_folder_others_can_write_to_is_refused_with_the_chmod(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    token_file = _keep(folder / "t.json")
    for mode in (0o770, 0o1777):
        folder.chmod(mode)
        result = _status(tmp_path, token_file)
        assert result.exit_code == 1
        _refused(
            result.output,
            f"the folder of MAILER_TOKEN_FILE={str(token_file)!r} can be written by other "
            f"users (mode {stat.filemode(stat.S_IFDIR | mode)})",
            f"Run `chmod go-w {folder}`",
        )
    folder.chmod(0o755)  # others may list it, not change it
    assert _status(tmp_path, token_file).exit_code == 0


def test_permission_denied_says_whose_file_it_is_to_read(tmp_path: Path) -> None:
    token_file = _keep(tmp_path / "t.json")
    prefix: list[str] = []
    if os.geteuid() == 0:  # root reads anything: without the capability it cannot
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            needed("setpriv (util-linux) is needed to run mailer as root without CAP_DAC_*")
        os.chown(token_file, NOBODY, NOBODY)
        prefix = [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]
    else:
        token_file.chmod(0o000)
    run = _mailer(tmp_path, token_file, *prefix)
    assert run.returncode == 1, run.stdout + run.stderr
    _refused(
        run.stdout + run.stderr,
        f"cannot read MAILER_TOKEN_FILE={str(token_file)!r}: permission denied. Run mailer "
        "as the user who signed in (the file's owner",
    )


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    token_file = tmp_path / "t.json"
    os.mkfifo(token_file, 0o600)
    run = _mailer(tmp_path, token_file)  # (reading it would wait for ever)
    assert run.returncode == 1, run.stdout + run.stderr
    _refused(run.stdout + run.stderr, "t.json' is not a regular file")
