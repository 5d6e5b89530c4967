"""``midway each``: a shell command per record, its templates, its guard and its children."""
