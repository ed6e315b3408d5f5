"""The hf-metatts web demo (Gradio): adapt a voice from a few clips in the browser, hear it and share it.

``hf-metatts demo --model DIR_OR_ID`` or :func:`launch` serves it; ``examples/spaces/hf-metatts-demo/`` deploys it
to Hugging Face Spaces. Needs ``gradio`` (``pip install hf-metatts[demo]``).
"""

from .app import NoModelError, build_demo, default_model, launch
from .session import DemoSession, ModelHost

__all__ = ["DemoSession", "ModelHost", "NoModelError", "build_demo", "default_model", "launch"]
