"""A real IMAP server for the tests: Debian's dovecot, configured in a temporary directory.

Run as the current user with a passwd-file user database; as root (CI containers) dovecot
refuses to run its login processes as root, so it uses the package's unprivileged users.
"""

from __future__ import annotations

import imaplib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support import free_port

DOVECOT = "/usr/sbin/dovecot"


class Dovecot:
    def __init__(self, user: str = "hub", password: str = "imap-secret"):
        self.user, self.password = user, password
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        # Not under pytest's tmp_path: dovecot's unprivileged users must be able to reach it.
        self.root = Path(tempfile.mkdtemp(prefix="omnihub-dovecot-"))
        self.root.chmod(0o755)

    def _accounts(self) -> tuple[str, str, int, int]:
        """(login user, internal user, mail uid, mail gid)."""
        if os.getuid() != 0:
            me = pwd.getpwuid(os.getuid()).pw_name
            return me, me, os.getuid(), os.getgid()
        internal = pwd.getpwnam("dovecot")
        return "dovenull", "dovecot", internal.pw_uid, internal.pw_gid

    def start(self, timeout: float = 20) -> Dovecot:
        assert Path(DOVECOT).exists(), "dovecot is missing: apt-get install dovecot-imapd"
        login, internal, uid, gid = self._accounts()
        for sub in ("run", "state", "mail", "home"):
            (self.root / sub).mkdir()
        for sub in ("mail", "home"):
            os.chown(self.root / sub, uid, gid)
        users = self.root / "users"
        users.write_text(f"{self.user}:{{PLAIN}}{self.password}:{uid}:{gid}::{self.root}/home\n")
        config = self.root / "dovecot.conf"
        config.write_text(
            f"""
base_dir = {self.root}/run
state_dir = {self.root}/state
log_path = {self.root}/dovecot.log
instance_name = omnihub-test-{self.port}
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_login_user = {login}
default_internal_user = {internal}
default_internal_group = {internal}
first_valid_uid = 0
mail_location = maildir:{self.root}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {users}
}}
userdb {{
  driver = passwd-file
  args = {users}
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
"""
        )
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", str(config)])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log()
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"dovecot did not start:\n{self.log()}")

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text() if path.exists() else "(no log)"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(15)
        shutil.rmtree(self.root, ignore_errors=True)

    def deliver(self, raw: bytes) -> None:
        """Put a mail into the INBOX over IMAP APPEND (what a mail server's delivery does)."""
        with imaplib.IMAP4("127.0.0.1", self.port) as imap:
            imap.login(self.user, self.password)
            result, _ = imap.append("INBOX", None, None, raw)
            assert result == "OK"

    def unseen(self) -> int:
        with imaplib.IMAP4("127.0.0.1", self.port) as imap:
            imap.login(self.user, self.password)
            imap.select("INBOX")
            result, data = imap.search(None, "UNSEEN")
            assert result == "OK"
            return len(data[0].split())
