"""The exit statuses of `python -m pipeline`, as README's "Commands" states them."""

import signal

EXIT_OK = 0
EXIT_FAILED = 1  # a camera failed or delivered no frame, a sink failed, or it could not start
EXIT_USAGE = 2  # bad config or arguments: nothing was processed
EXIT_INTERRUPTED = 130
EXIT_NO_EVENTS = 3  # subscribe: a publisher was there, but what was asked for did not come in time


def stopped_by(signum: int) -> int:
    """The exit status of a command that a signal stopped (it finished stopping itself):
    128 + the signal's number, the shell's convention (SIGINT 130, SIGTERM 143)."""
    return 128 + signum


class Terminated(KeyboardInterrupt):
    """What SIGTERM raises in a command without a stop of its own. A KeyboardInterrupt, so
    that whatever ends well on Ctrl-C (a partial export kept, data loader workers ended
    quietly) ends the same way on it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def interrupted_status(exc: KeyboardInterrupt) -> int:
    """The exit status of a command that `exc` stopped: Ctrl-C's 130 or SIGTERM's 143."""
    return stopped_by(exc.signum if isinstance(exc, Terminated) else signal.SIGINT)
