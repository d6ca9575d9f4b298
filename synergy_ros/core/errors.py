"""User-facing errors: one clear line naming the problem and what to do about it."""


class SynergyError(Exception):
    """An error caused by the user's input (file, flag, config, data), not by a bug.

    The message must say what is wrong and how to fix it. The CLI prints it as one line
    and exits non-zero without a traceback.
    """
