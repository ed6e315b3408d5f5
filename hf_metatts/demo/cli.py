"""``hf-metatts demo``: serve the web demo on 127.0.0.1 (or ``--host``)."""

import logging
import sys

logger = logging.getLogger(__name__)


def _demo(args) -> int:
    try:
        import gradio  # noqa: F401
    except ImportError:
        print("error: the demo needs gradio: pip install 'hf-metatts[demo]' (or pip install gradio)", file=sys.stderr)
        return 2
    from .app import NoModelError, launch

    try:
        launch(args.model, corpus=args.corpus, host=args.host, port=args.port, share=args.share, block=True)
    except NoModelError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def register(subparsers) -> None:
    """Add the ``demo`` sub-command."""
    parser = subparsers.add_parser("demo", help="serve the web demo: adapt a voice in the browser")
    parser.add_argument("--model", default=None,
                        help="base checkpoint folder or Hub id (default: $HF_METATTS_MODEL, else the bundled one)")
    parser.add_argument("--corpus", default=None,
                        help="a corpus saved by build-corpus: its test speakers become samples ($HF_METATTS_CORPUS)")
    parser.add_argument("--host", default=None, help="default: $GRADIO_SERVER_NAME, else 127.0.0.1")
    parser.add_argument("--port", type=int, default=None, help="default: $GRADIO_SERVER_PORT, else 7860 or the next")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    parser.set_defaults(func=_demo)
