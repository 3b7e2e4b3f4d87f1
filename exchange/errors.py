"""Domain errors of the exchange layer.

All derive from :class:`coding.errors.KofnError`, so the CLI turns them into one-line
messages. Store-level failures (missing key, lost ``if_absent`` race, refused credentials)
are built-ins instead; see :mod:`exchange.stores.base`.
"""

from __future__ import annotations

from collections.abc import Iterable

from coding.errors import KofnError

__all__ = ["CorruptShardError", "DecryptionError", "KeyFileError", "NotKeyHolderError", "ObjectTooLargeError",
           "RoundTimeoutError"]


class CorruptShardError(KofnError):
    """A stored shard failed its header or checksum validation.

    Parameters
    ----------
    key : str
        The object key of the shard.
    reason : str, optional
        What was wrong with it.
    """

    def __init__(self, key: str, reason: str = ""):
        self.key = key
        self.reason = reason
        tail = f": {reason}" if reason else "."
        super().__init__(f"Shard {key!r} is corrupt{tail}")


class ObjectTooLargeError(KofnError, ValueError):
    """An object is larger than its reader allows: refused before it is read whole."""

    def __init__(self, key: str, size: int, limit: int):
        self.key, self.size, self.limit = key, size, limit
        super().__init__(f"Object {key!r} is {size} bytes, more than the {limit} its reader "
                         f"allows; refused before reading it")


class DecryptionError(KofnError):
    """An object could not be decrypted: wrong key, tampered bytes, truncation or a copy.

    Parameters
    ----------
    key : str
        The object key that failed.
    reason : str, optional
        Which check failed.
    """

    def __init__(self, key: str, reason: str = ""):
        self.key = key
        self.reason = reason
        tail = f": {reason}" if reason else " (wrong key or tampered data)."
        super().__init__(f"Cannot decrypt object {key!r}{tail}")


class NotKeyHolderError(DecryptionError):
    """A share sealed to an aggregator whose private key this party does not hold.

    Not damage: the object is intact, but only its aggregator may open it, so this party
    cannot do that aggregator's job (a takeover) and waits for its merged shard instead.
    """


class RoundTimeoutError(KofnError):
    """A round's deadline passed before enough shards or results arrived.

    Parameters
    ----------
    missing : iterable of str or int
        What was still missing at the deadline (keys or worker indices).
    """

    def __init__(self, missing: Iterable[object]):
        self.missing = list(missing)
        shown = ", ".join(map(str, self.missing[:8]))
        more = f" and {len(self.missing) - 8} more" if len(self.missing) > 8 else ""
        super().__init__(f"Round timed out; still missing: {shown}{more}.")


class RoundBehindError(KofnError):
    """The round finished and was cleaned up without this party: it fell behind.

    :class:`exchange.session.AllReduce` catches it and skips to the newest complete round.

    Parameters
    ----------
    round : int
        The round that can no longer be collected.
    latest : int
        The newest complete round.
    """

    def __init__(self, round: int, latest: int):
        self.round, self.latest = round, latest
        super().__init__(f"Round {round} was completed and cleaned up without this worker "
                         f"(the newest complete round is {latest}); it is behind.")


class KeyFileError(KofnError):
    """A key file or key environment variable is missing or malformed."""
