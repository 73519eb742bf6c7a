"""The proactive refresh spread over several processes (``--processes``, issue 11).

Against a provider that answers at once a renewal costs the client about 1.8 ms of CPU, and
the GIL lets one process use one core however many threads it runs: one process reached
about 40 % of a bare httpx client's rate. So the parent, having found the due rows and cut
them into chunks exactly as for one process (flows/proactive.py), forks ``processes``
children. Child ``i`` runs chunks ``i``, ``i + N``, … with the threads, claims and HTTP
client of a one-process run, and sends each chunk's results back through a pipe of its own
as the chunk finishes: the progress bar moves, and the summary is the one a single process
would report.

Why these choices:

- Fork, not spawn: a spawned child would start Python and set Django up again, and the work
  (closures over the run's policy) would have to be pickled. The parent closes its database
  connections first, so a child never uses or closes a socket of the parent's; each child
  opens its own (the HTTP pools drop the inherited ones themselves: oauthconn/http/pool.py).
  A child ends through ``os._exit`` (multiprocessing's fork start), so no atexit handler and
  no Django teardown of the parent's state runs in it.
- A fixed share per child, dealt round robin from rows ordered by expiry, rather than a queue
  the children take chunks from: a child killed while holding the queue's lock would stall
  the others, and the shares of one run are alike. Knowing each child's share, the parent can
  say what a dead child left undone.
- The parent waits on every child's pipe and process sentinel at once: a child that dies is
  noticed when it dies; the others go on. The rows it had claimed stay leased until their
  lease ends (flows/proactive_batch.py), then the next run takes them: nothing is lost, and
  no token is renewed twice.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection as Pipe
from multiprocessing.connection import wait
from typing import TYPE_CHECKING, Any, cast

from django.db import connections

from oauthconn.exceptions import WorkerDied
from oauthconn.flows.common import LEASE_MARGIN
from oauthconn.flows.proactive_batch import Row

if TYPE_CHECKING:  # defined where "fork" exists only
    from multiprocessing.context import ForkContext, ForkProcess

Chunk = list[Row]
#: runs a share of the chunks in this process; yields each chunk's results as it finishes
RunShare = Callable[[list[Chunk]], Iterator[list[str]]]
Message = tuple[str, object]

RESULTS, FAILED, DONE = "results", "failed", "done"


def forkable() -> bool:
    """Whether this run may fork its workers; where not, it runs in one process.

    Not without the "fork" start method (Windows). Not inside a transaction: closing its
    connection would break the caller's transaction, and the children could not see its
    uncommitted rows. Not with a connection pool (Django's psycopg ``"pool"`` option): a
    child would inherit the pool's idle connections, the parent's sockets, and take them.
    """
    if "fork" not in multiprocessing.get_all_start_methods():
        return False
    if any(db.in_atomic_block for db in connections.all(initialized_only=True)):
        return False
    return not any(db.get("OPTIONS", {}).get("pool") for db in connections.settings.values())


@dataclass(eq=False)
class _Child:
    """A forked worker as the parent sees it: its pipe and how far its share got."""

    process: ForkProcess
    reader: Pipe
    #: tokens in its share, and how many of them it has reported
    rows: int
    reported: int = 0
    #: it sent DONE or FAILED: it did not end early
    finished: bool = False
    #: its pipe has no writer left (it ended); its sentinel says the rest
    drained: bool = False


def in_processes(run_share: RunShare, chunks: list[Chunk], processes: int) -> Iterator[str]:
    """The results of ``chunks``, run by ``processes`` forked children, as chunks finish.

    An exception in a child's chunk is raised here once every child has ended (the others
    finish their shares first, as threads do in one process); a child that ends without
    finishing its share (killed) raises :class:`~oauthconn.exceptions.WorkerDied` then.
    """
    _prepare_to_fork()
    context = multiprocessing.get_context("fork")
    children: list[_Child] = []
    errors: list[BaseException] = []
    try:
        for i in range(processes):
            children.append(_start(context, run_share, chunks[i::processes], i))
        yield from _collect(children, errors)
    finally:
        for child in children:
            # Also when the caller stops early (or a fork failed): a child still sending gets
            # a broken pipe, finishes its share (as threads do) and ends, waiting on no one.
            child.reader.close()
            child.process.join()
    lost = [child for child in children if not child.finished]
    if lost:
        # Before a child's error: a process gone is what an operator must hear about.
        raise WorkerDied(_lost_message(lost, len(children)))
    if errors:
        raise errors[0]


def _prepare_to_fork() -> None:
    connections.close_all()
    # A child flushes the standard streams when it ends: what the parent had buffered but
    # not yet written would be written once more by every child.
    sys.stdout.flush()
    sys.stderr.flush()


def _start(context: ForkContext, run_share: RunShare, share: list[Chunk], index: int) -> _Child:
    reader, writer = context.Pipe(duplex=False)
    process = context.Process(
        target=_child, args=(run_share, share, writer), name=f"oauthconn-refresh-{index + 1}"
    )
    process.start()
    writer.close()  # the child's copy is the one that writes
    return _Child(process, reader, rows=sum(len(chunk) for chunk in share))


def _collect(children: list[_Child], errors: list[BaseException]) -> Iterator[str]:
    """Each chunk's results as they arrive, until every child has ended."""
    running = list(children)
    while running:
        # Each child's process sentinel (an int), and its pipe while it may have more to say.
        handles: dict[Any, _Child] = {child.process.sentinel: child for child in running}
        handles.update({child.reader: child for child in running if not child.drained})
        ready = wait(list(handles))
        for child in dict.fromkeys(handles[handle] for handle in ready):
            # After the sentinel too: what a child sent before it ended is still in the pipe.
            yield from _take(child, errors)
            if child.process.sentinel in ready:
                child.process.join()
                running.remove(child)


def _take(child: _Child, errors: list[BaseException]) -> Iterator[str]:
    """What ``child`` has sent so far: its results passed on, its end or error noted."""
    for kind, payload in _messages(child):
        if kind == RESULTS:
            results = cast(list[str], payload)
            child.reported += len(results)
            yield from results
            continue
        child.finished = True
        if kind == FAILED and isinstance(payload, BaseException):
            errors.append(payload)


def _messages(child: _Child) -> Iterator[Message]:
    try:
        while not child.drained and child.reader.poll():
            yield child.reader.recv()
    except EOFError:
        child.drained = True  # every copy of its pipe's end is closed


def _lost_message(lost: list[_Child], total: int) -> str:
    what = "; ".join(
        f"process {child.process.pid} {_how_it_ended(child.process.exitcode)} with "
        f"{child.rows - child.reported} of its {child.rows} tokens not done"
        for child in lost
    )
    others = " The other processes finished their shares." if len(lost) < total else ""
    return (
        f"{len(lost)} of the {total} refresh worker processes ended early ({what}). Nothing "
        "was lost: every renewal a worker finished is stored, and the tokens a dead worker "
        "had claimed are free again when their lease ends (the deadlines of one renewal's "
        f"requests, REQUEST_DEADLINE each, plus {LEASE_MARGIN:g} s); the next run refreshes "
        f"them.{others}"
    )


def _how_it_ended(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        return f"was killed by {signal.Signals(-exitcode).name}"
    return f"exited with status {exitcode}"


# --- in the child ----------------------------------------------------------------------------


def _child(run_share: RunShare, share: list[Chunk], writer: Pipe) -> None:
    """A child's whole life: its share, each chunk's results sent back as it finishes."""
    # In a thread of its own: a new thread starts without thread-local state, so what the
    # forking thread had bound (an outbound HTTP client, its database connections) stays
    # the parent's, never touched here.
    worker = threading.Thread(target=_work, args=(run_share, share, writer), name="share")
    worker.start()
    worker.join()


def _work(run_share: RunShare, share: list[Chunk], writer: Pipe) -> None:
    try:
        for results in run_share(share):
            writer.send((RESULTS, results))
        writer.send((DONE, None))
    except BaseException as err:  # raised in the parent, once the others have finished
        _send_failure(writer, err)
    finally:
        connections.close_all()  # this process's own connections
        writer.close()


def _send_failure(writer: Pipe, err: BaseException) -> None:
    # The traceback does not travel with a pickled exception; the note carries it.
    where = f"Raised in refresh worker process {os.getpid()}:\n"
    err.add_note(where + "".join(traceback.format_exception(err)))
    try:
        writer.send((FAILED, _portable(err)))
    except OSError:
        pass  # the parent is gone or stopped listening: there is no one left to tell


def _portable(err: BaseException) -> BaseException:
    """``err``, or a stand-in with its text when it cannot be rebuilt in the parent (an
    exception class whose constructor needs other arguments than its ``args``)."""
    try:
        pickle.loads(pickle.dumps(err))
    except Exception:
        stand_in = RuntimeError(f"{type(err).__name__}: {err}")
        for note in getattr(err, "__notes__", []):
            stand_in.add_note(note)
        return stand_in
    return err
