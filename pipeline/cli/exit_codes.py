"""The exit statuses of `python -m pipeline`, as README's "Commands" states them."""

EXIT_OK = 0
EXIT_FAILED = 1  # a camera failed or delivered no frame, a sink failed, or it could not start
EXIT_USAGE = 2  # bad config or arguments: nothing was processed
EXIT_INTERRUPTED = 130
EXIT_NO_EVENTS = 3  # subscribe: a publisher was there, but what was asked for did not come in time


def stopped_by(signum: int) -> int:
    """The exit status of a command that a signal stopped (it finished stopping itself):
    128 + the signal's number, the shell's convention (SIGINT 130, SIGTERM 143)."""
    return 128 + signum
