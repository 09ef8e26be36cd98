"""The hostile-venue fuzz harness (issue #11): mutated venue frames through parse → store →
engine → alert encode. ``make fuzz`` runs it (:mod:`.run`); ``test_slice`` runs a seeded slice in
``make test``. Venues plug in through :data:`.targets.TARGETS` alone."""
