"""The app wing: the ``pianomime`` command (:mod:`.cli`), ``play`` and ``bench``."""
