"""Prediction as a service: ``python -m csa_keras.serve`` (or ``csa-keras serve``).

Loads one model (the default model in the box, ``vrn_fer2013``, unless ``--model`` names another: a
pretrained name, a run directory or a ``.keras`` file), on Keras or, without
TensorFlow, as its TFLite artifact on LiteRT (``--runtime``), and answers
``POST /predict``, ``GET /health`` and ``GET /models`` on
``http://HOST:PORT``, with a page at ``/`` to try it from a browser
(:mod:`csa_keras.inference.service`). It listens on the loopback interface
unless ``--host`` says otherwise.
"""
from __future__ import annotations

import sys

from csa_keras.utils.cli import Parser, entry_point, run_main
from csa_keras.utils.quiet import import_tensorflow

PROG = "python -m csa_keras.serve"


def build_parser() -> Parser:
    from csa_keras.inference.litert import RUNTIMES
    from csa_keras.inference.loading import DEFAULT_MODEL
    from csa_keras.inference.service import MAX_REQUEST_BYTES, QUEUE

    parser = Parser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", metavar="NAME_OR_PATH", default=DEFAULT_MODEL,
                        help=f"a pretrained model's name, a run directory or a .keras file "
                             f"(default: {DEFAULT_MODEL})")
    parser.add_argument("--runtime", choices=RUNTIMES, default="auto",
                        help="what runs the model: keras (TensorFlow), litert (its TFLite artifact, without "
                             "TensorFlow) or auto (default: keras where TensorFlow is installed, else litert)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="the interface to listen on (default 127.0.0.1, this machine only; "
                             "0.0.0.0 for every interface)")
    parser.add_argument("--port", type=int, default=8000, help="the TCP port (default 8000)")
    parser.add_argument("--queue", type=int, default=QUEUE, metavar="N",
                        help=f"requests that may wait while one is classified; more are refused "
                             f"with 503 (default {QUEUE})")
    parser.add_argument("--max-request-mb", type=float, default=MAX_REQUEST_BYTES / 2**20, metavar="MB",
                        help=f"the largest request body; larger ones are refused with 413 "
                             f"(default {MAX_REQUEST_BYTES / 2**20:g})")
    parser.add_argument("--quiet", action="store_true", help="no access log on stderr")
    return parser


@entry_point(PROG)
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    def body() -> int:
        try:
            import fastapi  # noqa: F401
            import uvicorn
        except ImportError as error:
            raise ValueError(f"serving needs the serve extra ({error.name} is not installed): "
                             "pip install 'csa-keras[serve]'") from None
        if not 0 < args.port < 65536:
            raise ValueError(f"--port must be between 1 and 65535. Received: --port={args.port}")
        from csa_keras.inference.litert import choose_runtime, resolve_artifact
        from csa_keras.inference.loading import pretrained_name, resolve_model_path

        runtime = choose_runtime(args.runtime)
        if runtime == "keras":
            import_tensorflow()
            model_path = resolve_model_path(args.model)
        else:
            model_path = resolve_artifact(args.model)
        from csa_keras.inference.predictor import Predictor
        from csa_keras.inference.service import create_app

        name = pretrained_name(model_path) or str(model_path)
        app = create_app(Predictor.from_run(model_path, runtime=runtime), name,
                         max_request_bytes=max(1, int(args.max_request_mb * 2**20)), queue=args.queue)
        print(f"serving {name} on http://{args.host}:{args.port}/ (Ctrl-C stops)", file=sys.stderr)
        uvicorn.run(app, host=args.host, port=args.port, access_log=not args.quiet,
                    log_level="warning" if args.quiet else "info")
        return 0

    return run_main(parser, body)


if __name__ == "__main__":
    sys.exit(main())
