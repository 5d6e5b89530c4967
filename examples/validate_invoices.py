"""Validate and book invoices from a CSV file; a person approves each one above 10,000.

    python examples/validate_invoices.py invoices.csv --make-invoices 500

Each invoice is checked (a positive amount, a known currency, a customer); one that fails a
check is skipped with its reason. One above 10,000 is not booked by the script alone: it asks
``ctx.approval`` and waits for a person, while the other invoices go on. The run ends
``waiting`` (exit 4) and says how to decide:

    midway show validate-invoices                     # the questions, with each invoice
    midway approve validate-invoices INV-0037 INV-0074
    midway approve validate-invoices INV-0111 --reject --note "not our supplier"
    midway approve validate-invoices --all            # or on the dashboard: midway ui

Run the script again: it hands the decided invoices back (approved ones are booked, rejected
ones are not) and handles nothing else; the invoices still undecided keep waiting.

The booked invoices go to ``booked.jsonl`` beside the CSV file (``--booked`` elsewhere),
one line each, written in a ``ctx.step`` so that a run handled again after a crash does not
book an invoice twice.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

import midway
from midway.errors import EXIT_WAITING

LIMIT = 10_000
CURRENCIES = {"EUR", "USD", "GBP", "CHF"}
CUSTOMERS = ["Acme GmbH", "Bolt & Co", "Cirrus SA", "Dune Ltd", "Eider AB", "Fjord AS"]


class InvalidInvoice(ValueError):
    """An invoice that fails a check: skipped, with the reason."""


def make_invoices(path: Path, count: int) -> None:
    """``count`` made-up invoices: every 37th above the limit, every 97th invalid."""
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["id", "customer", "amount", "currency"])
        for n in range(1, count + 1):
            amount = 120 + (n * 7919) % 9000 + (n % 100) / 100
            if n % 37 == 0:
                amount = LIMIT + (n * 131) % 40_000 + 0.5
            currency = "XXX" if n % 97 == 0 else ("EUR", "USD", "GBP")[n % 3]
            writer.writerow(
                [f"INV-{n:04d}", CUSTOMERS[n % len(CUSTOMERS)], f"{amount:.2f}", currency]
            )


def check(row: dict[str, str]) -> float:
    """The invoice's amount, if it passes every check."""
    try:
        amount = float(row["amount"])
    except ValueError:
        raise InvalidInvoice(f"amount {row['amount']!r} is not a number") from None
    if amount <= 0:
        raise InvalidInvoice(f"amount {amount} is not positive")
    if row["currency"] not in CURRENCIES:
        raise InvalidInvoice(f"currency {row['currency']!r} is not one we book")
    if not row["customer"].strip():
        raise InvalidInvoice("no customer")
    return amount


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("invoices", type=Path, help="CSV with id, customer, amount, currency")
    parser.add_argument("--store", default=None, help="midway store URL")
    parser.add_argument("--booked", type=Path, default=None, help="where booked invoices go")
    parser.add_argument("--make-invoices", type=int, default=0, metavar="N")
    args = parser.parse_args()
    if args.make_invoices:
        make_invoices(args.invoices, args.make_invoices)
    booked_file = args.booked or args.invoices.with_name("booked.jsonl")

    def book(row: dict[str, str], amount: float) -> str:
        with booked_file.open("a", encoding="utf-8") as out:
            out.write(json.dumps({"id": row["id"], "amount": amount}) + "\n")
        return row["id"]

    def validate(row: dict[str, str], ctx: midway.Context) -> None:
        amount = check(row)
        if amount > LIMIT:
            question = f"book {row['id']} for {amount:,.2f} {row['currency']} to {row['customer']}?"
            if not ctx.approval(question, data=row):
                ctx.state["rejected"] += 1
                return
        ctx.step("book", book, row, amount)
        ctx.state["booked"] += 1
        ctx.state["amount"] += amount

    job = midway.Job("validate-invoices", store=args.store, every=50, skip_on=InvalidInvoice)
    state: dict[str, Any] = {
        "booked": midway.Sum(),
        "rejected": midway.Sum(),
        "amount": midway.Sum(),
    }
    result = job.run(midway.sources.csv(args.invoices, key="id"), validate, state=state)
    print(
        f"{result.status}: {result.state['booked']:,} booked "
        f"({result.state['amount']:,.2f}), {result.state['rejected']:,} rejected, "
        f"{result.skipped:,} invalid, {result.waiting:,} waiting for a person"
    )
    return EXIT_WAITING if result.status == "waiting" else 0


if __name__ == "__main__":
    sys.exit(main())
