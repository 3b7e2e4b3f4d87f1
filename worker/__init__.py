"""kofn runtime: training, coded matrix tasks, launchers and the ``kofn`` CLI.

This is the only kofn package that imports torch; it does so lazily, inside the
subcommands that need it, so ``kofn --help`` and the non-training commands start fast.
"""
