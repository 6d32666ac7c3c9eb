"""Running the project's commands as a user does: a fresh interpreter, ``python -m MODULE``."""
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path


def run_module(module: str, *args, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python -m module args...`` with its exit status, stdout and stderr as text."""
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


def smoke_run(module: str, out, *args, timeout: float = 900):
    """The ``smoke`` preset of a training command into ``out``; fails the test on a non-zero exit."""
    result = run_module(module, "--recipe", "smoke", "--output", out, "--quiet", *args,
                        timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def error_line(code: int, out: str, err: str, prog: str, status: int = 2) -> str:
    """The one line ``<prog>: error: ...`` of a refused command, checked: exit ``status``,
    nothing on stdout, one line on stderr and no traceback."""
    lines = err.strip().splitlines()
    assert code == status, err
    assert out == "" and "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), err
    return lines[0]


def call_main(main, argv, capsys):
    """``main(argv)`` in this process, as its command would run: exit status, stdout, stderr."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit:
        code = exit.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def interrupt_after(monkeypatch, predictor, calls: int) -> list:
    """Make ``predictor.classify`` raise Ctrl-C on its call number ``calls + 1``; returns the
    list of batch sizes it was called with."""
    seen = []
    classify = predictor.classify

    def interrupted(faces):
        seen.append(len(faces))
        if len(seen) > calls:
            raise KeyboardInterrupt
        return classify(faces)

    monkeypatch.setattr(predictor, "classify", interrupted)
    return seen


def free_ports(n: int) -> list[int]:
    """``n`` TCP ports free on localhost now: a multi-worker cluster's addresses."""
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def project_env(**variables: str) -> dict[str, str]:
    """The environment of a script run from a temporary folder: this checkout's packages first on
    its path (a script's own folder, not the current one, starts ``sys.path``), and ``variables``."""
    root = str(Path(__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    return dict(os.environ, PYTHONPATH=path, **variables)


def run_workers(script: Path, *args, scratch_in: Path, n: int = 2, timeout: float = 900):
    """``python script args...`` as the ``n`` workers of a ``tf.distribute`` cluster on localhost,
    each with its own ``TF_CONFIG`` and temporary folder ``scratch_in/tmp<index>``.

    Returns ``(results, scratch, wall)``: each worker's ``(returncode, stdout, stderr)`` in
    index order (worker 0 is the chief), the temporary folders, and the wall seconds; a worker
    still running at ``timeout`` is killed.
    """
    cluster = [f"127.0.0.1:{port}" for port in free_ports(n)]
    processes, scratch = [], []
    started = time.perf_counter()
    for index in range(n):
        scratch.append(scratch_in / f"tmp{index}")
        scratch[-1].mkdir()
        env = project_env(TF_CPP_MIN_LOG_LEVEL="2", TMPDIR=str(scratch[-1]),
                          TF_CONFIG=json.dumps({"cluster": {"worker": cluster},
                                                "task": {"type": "worker", "index": index}}))
        processes.append(subprocess.Popen([sys.executable, str(script), *map(str, args)],
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True, env=env))
    try:
        outputs = [p.communicate(timeout=timeout) for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
    results = [(p.returncode, out, err) for p, (out, err) in zip(processes, outputs)]
    return results, scratch, time.perf_counter() - started
