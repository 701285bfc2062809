"""The one error type users see: a single line naming the file, line or key at fault."""


class PromptTuneError(Exception):
    """A user-facing error. The CLI prints ``error: <message>`` on one line and exits with 2."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))
