"""Hugging Face Spaces entry point of the hf-metatts demo; ``python app.py`` serves it locally.

The base model is ``$HF_METATTS_MODEL`` (a Hub id or folder; set it as a Space variable), else the checkpoint
bundled with hf-metatts. ``$HF_METATTS_CORPUS`` (optional) names a saved corpus whose test speakers are offered
as samples. All of the app lives in ``hf_metatts.demo``.
"""

import logging
import os
import sys

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from hf_metatts.demo import NoModelError, launch  # noqa: E402

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        launch(os.environ.get("HF_METATTS_MODEL") or None, corpus=os.environ.get("HF_METATTS_CORPUS") or None)
    except NoModelError as error:
        sys.exit(f"error: {error}")
