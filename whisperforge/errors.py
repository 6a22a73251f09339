"""The one exception type for user errors, and the one way an exception becomes one line.

Every problem a user can fix (bad archive, bad config key, malformed transcript line) is raised as
`WhisperforgeError` with a one-line message naming the file or key; scripts turn it into that one
line on stderr and a non-zero exit, never a traceback.
"""


class WhisperforgeError(Exception):
    """A user-fixable problem; the message is one line naming the file or config key."""


def one_line(error: BaseException) -> str:
    """An exception as `Type: first line of its message` (to quote a library's error)."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
