"""The e-mail example: 1,000 personalised messages to a real SMTP server, at most once each,
with the sender SIGKILLed part-way several times (after a number of messages received)."""

from __future__ import annotations

import asyncio
import csv
import socket
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from midway.stores import open_store
from support.crashjob import pick_seed, reap_runners
from support.killer import kill_until_done
from support.ledgers import completed

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "send_emails.py"
COUNT = 1000


class Mailbox:
    """What the server accepted: one entry per message, with its recipients.

    It is also the kill tests' gate (``support.killer.Gate``): held at a count, it keeps
    the sender waiting for its reply to that message until released, so that a sender
    meant to be killed cannot finish before its kill lands."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: list[tuple[str, str]] = []
        self.hold_at: int | None = None

    def count(self) -> int:
        with self.lock:
            return len(self.messages)

    def hold(self, count: int) -> dict[str, str]:
        with self.lock:
            self.hold_at = len(self.messages) + count
        return {}

    def release(self) -> None:
        with self.lock:
            self.hold_at = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        text = envelope.content.decode("utf-8", "replace")
        message_id = next(
            (
                line.split(":", 1)[1].strip()
                for line in text.splitlines()
                if line.lower().startswith("message-id:")
            ),
            "",
        )
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.messages.append((rcpt, message_id))
            held = self.hold_at is not None and len(self.messages) >= self.hold_at
        while held:  # received, but the sender gets no reply while held
            await asyncio.sleep(0.005)
            with self.lock:
                held = self.hold_at is not None
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    port = free_port()
    controller = aiosmtpd_controller.Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()
        reap_runners()


def test_newsletter_goes_out_at_most_once_through_kills(
    smtp_server: tuple[Mailbox, int], tmp_path: Path
) -> None:
    mailbox, port = smtp_server
    recipients = tmp_path / "recipients.csv"
    with recipients.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["email", "first_name", "plan"])
        for n in range(COUNT):
            writer.writerow([f"user{n:05d}@example.com", "Zoë", ("free", "pro")[n % 2]])
    store_url = f"sqlite:///{tmp_path / 'state.db'}"
    seed = pick_seed()
    argv = [
        sys.executable,
        str(EXAMPLE),
        str(recipients),
        "--smtp",
        f"127.0.0.1:{port}",
        "--store",
        store_url,
    ]

    finished = completed(store_url, "send-newsletter")

    report = kill_until_done(
        argv,
        seed=seed,
        cwd=tmp_path,
        kills=6,
        progress=mailbox.count,
        after=(20, 250),
        finished=finished,
        gate=mailbox,
    )
    why = report.describe()
    assert finished(), why
    assert report.last.killed or report.last.returncode == 0, why
    assert report.kills >= 2, why

    with mailbox.lock:
        delivered = Counter(rcpt for rcpt, _ in mailbox.messages)
        message_ids = [mid for _, mid in mailbox.messages]
    store = open_store(store_url)
    try:
        job = next(r for r in store.list_jobs() if r.name == "send-newsletter")
        in_doubt = {r.key for r in store.list_items(job.job, ("in_doubt",))}
    finally:
        store.close()
    everyone = {f"user{n:05d}@example.com" for n in range(COUNT)}
    duplicates = [rcpt for rcpt, count in delivered.items() if count > 1]
    assert not duplicates, (duplicates[:5], why)  # nobody got the newsletter twice
    assert set(delivered) | in_doubt == everyone, why  # nobody forgotten
    assert len(in_doubt) <= report.kills, (sorted(in_doubt), why)  # at most one per kill
    assert len(set(message_ids)) == len(message_ids), why  # stable, unique Message-IDs
    if not report.last.killed:
        assert f"in doubt {len(in_doubt)}" in report.last.stdout, report.last.stdout
