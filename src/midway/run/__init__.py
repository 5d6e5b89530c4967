"""One run of one job: the lifecycle, the fast slice loop, commits and the lag bound, the
guarantees, the careful per-item path, the context and the parallel executors.

Nothing here imports ``midway.job``: the job builds a run and hands it what it needs."""
