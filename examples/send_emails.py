"""Send a personalised e-mail to each recipient of a CSV file, at most once each.

    python examples/send_emails.py recipients.csv --smtp 127.0.0.1:8025

Run it, kill it (Ctrl-C, kill -9, a reboot), run it again: it carries on where it stopped
and never sends a message twice. If a crash lands while a message is being handed to the
server, midway cannot know whether it went out: that recipient is reported *in doubt*,
not sent again. Check the mail server's log, then tell midway:

    midway resolve send-newsletter alice@example.com --done     # it went out
    midway resolve send-newsletter --all --retry                # it did not: send again

Each message carries a Message-ID made from ``ctx.idempotency_key``, stable across runs,
so a server or a later audit can recognise a message it has already seen.

With ``--make-recipients N`` it first writes N made-up recipients to the CSV file.
"""

from __future__ import annotations

import argparse
import csv
import smtplib
import sys
from email.message import EmailMessage
from pathlib import Path

import midway

FIRST_NAMES = ["Ada", "Björn", "Chiara", "Dmitri", "Émile", "Fatima", "Grace", "Hiro"]


def make_recipients(path: Path, count: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["email", "first_name", "plan"])
        for n in range(count):
            name = FIRST_NAMES[n % len(FIRST_NAMES)]
            writer.writerow([f"user{n:05d}@example.com", name, ("free", "pro")[n % 2]])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipients", type=Path, help="CSV with email, first_name, plan")
    parser.add_argument("--smtp", default="127.0.0.1:8025", help="host:port of the server")
    parser.add_argument("--store", default=None, help="midway store URL")
    parser.add_argument("--make-recipients", type=int, default=0, metavar="N")
    args = parser.parse_args()
    if args.make_recipients:
        make_recipients(args.recipients, args.make_recipients)
    host, _, port = args.smtp.rpartition(":")
    smtp = smtplib.SMTP(host, int(port), timeout=30)

    def send(row: dict[str, str], ctx: midway.Context) -> None:
        message = EmailMessage()
        message["From"] = "news@example.com"
        message["To"] = row["email"]
        message["Subject"] = f"{row['first_name']}, your {row['plan']} plan this month"
        message["Message-ID"] = f"<{ctx.idempotency_key}@midway.example>"
        message.set_content(
            f"Hello {row['first_name']},\n\nhere is what changed in your {row['plan']} plan.\n"
        )
        smtp.send_message(message)

    job = midway.Job(
        "send-newsletter",
        store=args.store,
        guarantee="at-most-once",
        params={"recipients": str(args.recipients.resolve())},
    )
    try:
        result = job.run(midway.sources.csv(args.recipients, key="email"), send)
    finally:
        smtp.quit()
    print(
        f"sent {result.succeeded:,}, failed {result.failed:,}, in doubt {result.in_doubt:,}"
        + (f" (see: midway show {job.key})" if result.in_doubt else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
