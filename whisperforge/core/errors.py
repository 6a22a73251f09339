"""The one exception type for user errors, and the one way an exception becomes one line.

Every problem a user can fix (bad archive, bad config key, malformed transcript line) is raised as
`WhisperforgeError` with a one-line message naming the file or key; scripts turn it into that one
line on stderr and a non-zero exit, never a traceback.
"""


class WhisperforgeError(Exception):
    """A user-fixable problem; the message is one line naming the file or config key."""


def first_line(text: str, limit: int = 200) -> str:
    """The first non-blank line of `text`, cut to `limit` characters."""
    first = next((line.strip() for line in str(text).splitlines() if line.strip()), "")
    return first if len(first) <= limit else first[: limit - 3] + "..."


def one_line(error: BaseException) -> str:
    """An exception as `Type: first line of its message` (to quote a library's error)."""
    text = first_line(str(error))
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
