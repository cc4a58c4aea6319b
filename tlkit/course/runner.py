"""Inside the sandbox: run one graded notebook cell by cell and report what happened (``tlkit grade``).

    python -I -m tlkit.course.runner NOTEBOOK_FD EVENTS_FD CELL_TIMEOUT MAX_OUTPUT

The grader writes the notebook to run (the submission's cells plus its own grader cells) into the
pipe ``NOTEBOOK_FD``; nothing of it is stored where the submission could read it. Events go out as
JSON lines through ``EVENTS_FD``: ``evidence`` (a grader cell's output), ``error``, ``cell_timeout``,
``truncated``, ``died`` and ``done``. Everything in here runs beside the submission and may be
tampered with by it, so the grader treats each line as untrusted data: it only ever costs this
submission points.
"""
from __future__ import annotations

import json
import os
import sys
import time

from .exercises import EVIDENCE_MIME, MAX_EVIDENCE_BYTES


def _not_dumpable() -> None:
    """Linux: the kernel this process starts cannot read its memory or open its pipes through /proc."""
    if sys.platform.startswith("linux"):
        import ctypes
        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE


def run(notebook_fd: int, events_fd: int, cell_timeout: int, max_output: int) -> None:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    _not_dumpable()
    with os.fdopen(notebook_fd, "rb") as pipe:
        nb = nbformat.reads(pipe.read().decode("utf-8"), as_version=4)
    out = os.fdopen(events_fd, "w", buffering=1)

    def send(**message):
        out.write(json.dumps(message) + "\n")

    class CappedClient(NotebookClient):
        """Keeps at most ``max_output`` bytes of the submission's output of every kind; a grader cell's
        evidence output is kept apart (up to MAX_EVIDENCE_BYTES) so that a flood cannot crowd it out."""
        kept = 0

        def output(self, outs, msg, display_id, cell_index):
            content = msg.get("content", {})
            size = len(json.dumps(content, default=str))
            grader = "grader_item" in nb.cells[cell_index].metadata
            if grader and EVIDENCE_MIME in content.get("data", {}) and size <= MAX_EVIDENCE_BYTES * 2:
                return super().output(outs, msg, display_id, cell_index)
            if self.kept + size > max_output:
                if self.kept <= max_output:
                    send(event="truncated", cell=cell_index)
                self.kept = max_output + 1
                return None
            self.kept += size
            return super().output(outs, msg, display_id, cell_index)

    client = CappedClient(
        nb, timeout=cell_timeout, kernel_name="python3", allow_errors=True, interrupt_on_timeout=True,
        error_on_timeout={"ename": "CellTimeout", "evalue": f"the cell ran longer than {cell_timeout} s",
                          "traceback": []},
        resources={"metadata": {"path": os.getcwd()}})
    try:
        with client.setup_kernel():
            for index, cell in enumerate(nb.cells):
                start = time.perf_counter()
                client.execute_cell(cell, index)
                if time.perf_counter() - start >= cell_timeout:
                    send(event="cell_timeout", cell=index)
                    continue  # its error is the interrupt we sent, not the learner's
                grader = "grader_item" in cell.metadata
                sent = False
                for o in cell.outputs:
                    if o.get("output_type") == "error":
                        send(event="error", cell=index, ename=str(o.get("ename", ""))[:100],
                             evalue=str(o.get("evalue", ""))[:300], grader=grader)
                    data = o.get("data", {})
                    if grader and not sent and EVIDENCE_MIME in data:
                        send(event="evidence", cell=index, payload=data[EVIDENCE_MIME])
                        sent = True
                cell.outputs = []  # kept only as long as needed: memory counts
    except DeadKernelError:
        send(event="died")
    send(event="done")


if __name__ == "__main__":
    run(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
