"""The operator's API: read and act on the jobs in a store, from Python.

``midway.jobs()`` and a job's ``status``, ``items``, ``retry``, ``resolve``, ``note``,
``reset`` and ``report`` (:class:`midway.Job`) are these functions; the command line and
the dashboard call the same ones, so what a script sees is what ``midway show`` prints.
They read the store through :mod:`midway.views` and change it through the store's own
methods (never through a run), and they treat a distributed job as one job.
"""
