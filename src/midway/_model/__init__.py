"""The data midway keeps: identities, owners, checkpoints, ledger records, results and
settings, with the JSON they are written as. No I/O, and nothing above it is imported here."""
