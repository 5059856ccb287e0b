"""The sign-up e-mail sender of ``spsbot serve``: one background thread over the outbox.

A sign-up wakes it at once; it also looks every ``interval`` seconds, so e-mails left pending by
an SMTP outage or a restart go out when the relay is back. One thread, one SMTP connection at a
time: a flood of sign-ups can never open a flood of connections (and the rate limits cap it).
"""

from __future__ import annotations

import logging
import threading

from bot.digest.confirmations import send_signup_mails
from bot.digest.send import SendError
from bot.store.errors import StoreError

log = logging.getLogger(__name__)


class SignupMailer:
    def __init__(self, db_path: str, config, base_url: str, interval: float = 60.0):
        self.db_path, self.config, self.base_url, self.interval = db_path, config, base_url, interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="spsbot-signup-mailer", daemon=True)

    def start(self) -> "SignupMailer":
        self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        from bot.store import DatabaseOpenError, open_db
        while not self._stop.is_set():
            self._wake.clear()  # before sending: a sign-up stored meanwhile wakes the next pass
            try:
                # opened for each pass: the file now at the path (one moved away is let go, one put
                # back is used), never a new one: `serve` made it before starting this thread
                db = open_db(self.db_path, create=False)
                try:
                    send_signup_mails(db, self.config, self.base_url)
                finally:
                    db.close()
            except (SendError, StoreError, DatabaseOpenError, OSError) as e:  # keep the thread alive; retry later
                log.warning("sign-up e-mails: %s: %s", type(e).__name__, e)
            self._wake.wait(self.interval)
