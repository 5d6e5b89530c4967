"""Distributed runs: the shared plan of partitions and the loop each worker runs."""
