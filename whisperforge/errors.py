"""The one exception type for user errors.

Every problem a user can fix (bad archive, bad config key, malformed transcript line) is raised as
`WhisperforgeError` with a one-line message naming the file or key; scripts turn it into that one
line on stderr and a non-zero exit, never a traceback.
"""


class WhisperforgeError(Exception):
    """A user-fixable problem; the message is one line naming the file or config key."""
