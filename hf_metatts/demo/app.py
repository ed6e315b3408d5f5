"""The Gradio app: record or upload a few clips, adapt a voice, hear it, see how close it is, share it.

``build_demo(host)`` builds the `gr.Blocks`; ``launch(model)`` loads the base model and serves it. Each browser
session keeps its own voice in ``gr.State``; the base model is shared (behind a lock) and never changed.
"""

import logging
import os

from ..tokenization_metatts import DEFAULT_LANGUAGE, supported_languages
from ..voice_adapt import EXTRA_PARAMETERS_STEPS
from . import handlers
from .samples import sample_clips, sample_speakers
from .session import DemoSession, ModelHost

logger = logging.getLogger(__name__)

#: The Steps slider's starting value: the bundled checkpoint's meta-learned step count.
DEFAULT_STEPS = 5
TITLE = "hf-metatts: your voice from a few clips"
INTRO = f"""# {TITLE}
1. **Clips**: record or upload 1 to {handlers.MAX_CLIPS} short clips (0.5 to 30 s) of one speaker and write what is
   said in each, one line per clip in the same order (or pick a sample speaker); choose their language.
2. **Adapt**: choose the method and the number of steps. The base model is meta-learned to adapt in a few steps.
   Adapting the decoder's layers too (40 steps instead of 5) gives a voice closer to the clips' speaker.
3. **Speak**: type text and hear it in your voice; download the voice or push it to the Hugging Face Hub.
"""


def _curve_frame(rows):
    import pandas as pd

    return pd.DataFrame(rows if rows else {"step": [], "loss": []})


def steps_for_decoder_layers(decoder_layers: bool) -> int:
    """The Steps slider's value when the decoder's layers are (not) adapted: the measured recipe's, else the default."""
    return EXTRA_PARAMETERS_STEPS if decoder_layers else DEFAULT_STEPS


def build_demo(host: ModelHost, corpus: str | None = None):
    """The app's `gr.Blocks` for the shared ``host``; ``corpus``: a saved corpus for the sample speakers."""
    import gradio as gr

    speakers = sample_speakers(corpus)

    def adapt(session, files, transcripts, method, steps, match_prosody=False, language=DEFAULT_LANGUAGE,
              match_rhythm=False, decoder_layers=False, progress=gr.Progress()):  # noqa: B008 (gradio injects it)
        progress(0, desc="Checking the clips")

        def on_step(step, total, loss):
            progress((step, total), desc=f"Adapting: step {step}/{total}, loss {loss:.3f}")

        session, status, rows, similarity = handlers.adapt(host, session, files, transcripts, method, steps,
                                                           on_step=on_step, match_prosody=match_prosody,
                                                           language=language, match_rhythm=match_rhythm,
                                                           decoder_layers=decoder_layers)
        return session, status, _curve_frame(rows), similarity

    def speak(session, text, language=DEFAULT_LANGUAGE):
        return handlers.speak(host, session, text, language)

    def use_sample(speaker):
        if not speaker:
            return gr.update(), gr.update(), handlers.PROBLEM + "Pick a sample speaker first."
        try:
            paths, texts = sample_clips(corpus, speaker)
        except (OSError, ValueError) as error:
            return gr.update(), gr.update(), handlers.PROBLEM + f"Could not load the sample: {error}"
        return paths, "\n".join(texts), handlers.OK + f"Loaded {len(paths)} clips of the test speaker {speaker}."

    with gr.Blocks(title=TITLE) as demo:
        session = gr.State(DemoSession())
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column():
                files = gr.File(label=f"Clips (1 to {handlers.MAX_CLIPS})", file_count="multiple",
                                file_types=["audio"], type="filepath", elem_id="clips")
                transcripts = gr.Textbox(label="Transcripts: one line per clip, in the same order", lines=4,
                                         elem_id="transcripts")
                language = gr.Dropdown(sorted(supported_languages()), value=DEFAULT_LANGUAGE,
                                       label="Language of the transcripts and of the text to speak (espeak-ng code)",
                                       elem_id="language")
                with gr.Accordion("Record a clip", open=False):
                    recording = gr.Audio(sources=["microphone"], type="filepath", label="Recording")
                    recording_text = gr.Textbox(label="What you said in the recording")
                    add = gr.Button("Add the recording")
                if speakers:
                    with gr.Row():
                        sample = gr.Dropdown(speakers, label="Or a held-out test speaker of the corpus")
                        use = gr.Button("Use the sample clips")
                clips_message = gr.Markdown(elem_id="clips-message")
            with gr.Column():
                method = gr.Dropdown(list(handlers.METHODS), value="maml", label="Method")
                steps = gr.Slider(0, handlers.MAX_STEPS, value=DEFAULT_STEPS, step=1, label="Steps")
                match_prosody = gr.Checkbox(False, label="Match the clips' speaking style (rate, pitch level and "
                                            "range): for clips read faster, livelier or flatter than usual",
                                            elem_id="match-prosody")
                match_rhythm = gr.Checkbox(False, label="Match the clips' rhythm (token durations): for a language "
                                           "the model never trained on", elem_id="match-rhythm")
                decoder_layers = gr.Checkbox(False, label="A closer voice: adapt the decoder's layers too "
                                             f"({EXTRA_PARAMETERS_STEPS} steps; slower, a 5.5 MB voice)",
                                             elem_id="decoder-layers")
                adapt_button = gr.Button("Adapt", variant="primary", elem_id="adapt")
                status = gr.Markdown(elem_id="adapt-status")
                similarity = gr.Markdown(elem_id="similarity")
                curve = gr.LinePlot(_curve_frame(None), x="step", y="loss", title="Adaptation curve (support loss)",
                                    elem_id="curve")
        with gr.Row():
            with gr.Column():
                text = gr.Textbox(label=f"Text to speak (at most {handlers.MAX_TEXT_CHARS} characters)",
                                  value="Meta-learning makes adaptation fast.", elem_id="text")
                speak_button = gr.Button("Speak", variant="primary", elem_id="speak")
                speak_message = gr.Markdown(elem_id="speak-message")
            audio = gr.Audio(label="Result", type="numpy", format="wav", interactive=False, elem_id="result")
        with gr.Row():
            with gr.Column():
                download_button = gr.Button("Download the voice (zip)", elem_id="download")
                voice_zip = gr.File(label="Voice", interactive=False, elem_id="voice-zip")
            with gr.Column():
                repo = gr.Textbox(label="Hub repository", placeholder="your-name/my-voice", elem_id="repo")
                token = gr.Textbox(label="Hugging Face token (write)", type="password", elem_id="token")
                push_button = gr.Button("Push to the Hub", elem_id="push")
        share_message = gr.Markdown(elem_id="share-message")

        adapt_button.click(adapt, [session, files, transcripts, method, steps, match_prosody, language, match_rhythm,
                                   decoder_layers], [session, status, curve, similarity], api_name="adapt")
        decoder_layers.change(steps_for_decoder_layers, [decoder_layers], [steps])
        speak_button.click(speak, [session, text, language], [audio, speak_message], api_name="speak")
        download_button.click(handlers.download, [session], [voice_zip, share_message], api_name="download")
        push_button.click(handlers.push, [session, repo, token], [share_message], api_name="push")
        add.click(handlers.add_recording, [files, transcripts, recording, recording_text],
                  [files, transcripts, clips_message], api_name="add_recording")
        if speakers:
            use.click(use_sample, [sample], [files, transcripts, clips_message], api_name="use_sample")
    return demo


def default_model() -> str | None:
    """``HF_METATTS_MODEL``, else ``hf_metatts.DEFAULT_CHECKPOINT`` when the package has one, else None."""
    import hf_metatts

    return os.environ.get("HF_METATTS_MODEL") or getattr(hf_metatts, "DEFAULT_CHECKPOINT", None)


class NoModelError(ValueError):
    """No base model was named and the package has no default checkpoint."""


def launch(model: str | None = None, corpus: str | None = None, host: str | None = None, port: int | None = None,
           share: bool = False, block: bool = True):
    """Load ``model`` (default: :func:`default_model`) and serve the demo -> ``(demo, url)``.

    ``host`` and ``port`` default to ``$GRADIO_SERVER_NAME`` (else 127.0.0.1) and ``$GRADIO_SERVER_PORT`` (else
    7860 or the next free port), which is what Hugging Face Spaces sets. ``block=False`` returns once the server
    is up (for tests and notebooks); close it with ``demo.close()``.

    Raises:
        NoModelError: no model given, no ``HF_METATTS_MODEL`` and no ``hf_metatts.DEFAULT_CHECKPOINT``.
    """
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    model = model or default_model()
    if not model:
        raise NoModelError("No base model: pass --model DIR_OR_HUB_ID (or set HF_METATTS_MODEL), for example a "
                           "folder written by `python examples/quickstart.py --out outputs/quickstart` "
                           "(outputs/quickstart/model).")
    corpus = corpus or os.environ.get("HF_METATTS_CORPUS") or None
    demo = build_demo(ModelHost.load(model), corpus=corpus)
    demo.queue(default_concurrency_limit=4)
    _, url, _ = demo.launch(server_name=host, server_port=port, share=share, prevent_thread_lock=not block,
                            max_file_size=handlers.MAX_FILE_BYTES * 2, ssr_mode=False, run_history=False,
                            quiet=not block)
    return demo, url
