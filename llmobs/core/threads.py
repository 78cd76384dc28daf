"""llmobs' background threads leave asynchronous signals to the application's main thread."""

from __future__ import annotations

import signal

#: Signals an application handles, or dies of, that the kernel may deliver to any of its threads.
_APP_SIGNALS = tuple(
    getattr(signal, name)
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGCHLD", "SIGWINCH")
    if hasattr(signal, name)
)


def leave_signals_to_main_thread() -> None:
    """Block the application's signals in the calling thread (one of llmobs' background threads).

    The kernel delivers a signal sent to the process to any thread that does not block it.
    Python runs signal handlers on the main thread only, and a signal that lands on another
    thread does not interrupt what the main thread is blocked in (`time.sleep`, `select`, a
    lock): the handler, a SIGTERM handler for instance, would wait until that call returns on its
    own, which can be minutes. Blocked in our threads, the signal goes to a thread that can act.

    Only for threads that run llmobs' own code: a subprocess inherits the mask of the thread
    that starts it, so threads that run the user's code (evaluators) keep theirs.
    """
    if not hasattr(signal, "pthread_sigmask"):  # Windows: no process-directed POSIX signals
        return
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, _APP_SIGNALS)
    except (OSError, ValueError):
        pass
