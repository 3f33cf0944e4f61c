"""`prosector chat`: a Gradio Blocks app: load a scan, ask in words, see the masks, download the results.

Each browser tab holds its own ChatSession (gr.State), so two tabs never share a scan or a chat.
Offline by construction: Gradio's analytics are off, the theme uses system fonts only, and the
viewer's pictures are rendered here with numpy and Pillow.
"""
from __future__ import annotations

import os
import queue
import threading

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("GRADIO_TELEMETRY_ENABLED", "False")

import gradio as gr  # noqa: E402  (the environment above must be set before gradio is imported)

from prosector.errors import ProsectorError  # noqa: E402

from .chat_session import DEFAULT_MAX_UPLOAD_MB, ChatSession  # noqa: E402
from .paths import AllowedFolders  # noqa: E402
from .viewer import WINDOWS, legend_html  # noqa: E402

STRUCTURE_COLUMNS = ["structure", "volume (mL)", "mean", "unit", "engine", "border"]
SENTENCE_COLUMNS = ["sentence", "structures"]
WINDOW_CHOICES = [*WINDOWS, "free"]

CSS = """
#prosector-viewer img { image-rendering: pixelated; background: #000; }
.prosector-legend { font-size: 0.9em; padding: 4px 0; }
"""


def offline_theme() -> gr.Theme:
    """The default look with system fonts: nothing fetched from a font CDN."""
    return gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                             font_mono=["ui-monospace", "monospace"])


def build_app(allowed: AllowedFolders | None = None, *, max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
              llm: str | None = None) -> gr.Blocks:
    allowed = allowed or AllowedFolders()

    def ensure(state: ChatSession | None) -> ChatSession:
        return state if state is not None else ChatSession(allowed, max_upload_mb=max_upload_mb, llm=llm)

    with gr.Blocks(title="Prosector", analytics_enabled=False) as app:
        state = gr.State(None)
        gr.Markdown("## Prosector\nAsk for anatomy in plain words; see it on your own scan.")
        with gr.Row():
            with gr.Column(scale=5):
                with gr.Accordion("Scan", open=True) as scan_box:
                    with gr.Row():
                        scan_upload = gr.File(label="Scan (NIfTI, NRRD, MGZ, DICOM .zip)", type="filepath",
                                              elem_id="scan-upload")
                        seg_upload = gr.File(label="Existing segmentation (optional: NIfTI, DICOM SEG, .zip of masks)",
                                             type="filepath", elem_id="seg-upload")
                    scan_path = gr.Textbox(label="…or a scan path on the server", elem_id="scan-path",
                                           placeholder=f"inside {allowed.describe()}")
                    seg_path = gr.Textbox(label="…and its segmentation path on the server (optional)",
                                          elem_id="seg-path")
                    series_uid = gr.Textbox(label="DICOM series UID (optional; default: the largest series)",
                                            elem_id="series-uid")
                    load_button = gr.Button("Load scan", variant="primary", elem_id="load-button")
                status = gr.Markdown("No scan loaded.", elem_id="load-status")
                chatbot = gr.Chatbot(label="Chat", height=520, elem_id="chat")
                with gr.Row():
                    question = gr.Textbox(label="Ask", placeholder="segment the left adrenal gland",
                                          scale=5, elem_id="question")
                    send = gr.Button("Send", variant="primary", scale=1, elem_id="send")
            with gr.Column(scale=6):
                gr.Markdown("**Viewer**: axial · coronal · sagittal, radiological convention "
                            "(patient's left on the viewer's right)")
                viewer = gr.Image(show_label=False, type="pil", interactive=False, elem_id="prosector-viewer",
                                  height=380, buttons=["download"])
                legend = gr.HTML(legend_html(None), elem_id="legend")
                with gr.Row():
                    preset = gr.Radio(WINDOW_CHOICES, value="soft tissue", label="Window", elem_id="window")
                    opacity = gr.Slider(0, 1, value=0.5, step=0.05, label="Opacity", elem_id="opacity")
                with gr.Row():
                    level = gr.Number(value=40, label="Level (free window)", elem_id="level")
                    width = gr.Number(value=400, label="Width (free window)", elem_id="width")
                with gr.Row():
                    axial = gr.Slider(0, 1, value=0, step=1, label="Axial slice", elem_id="axial-slice")
                    coronal = gr.Slider(0, 1, value=0, step=1, label="Coronal slice", elem_id="coronal-slice")
                    sagittal = gr.Slider(0, 1, value=0, step=1, label="Sagittal slice", elem_id="sagittal-slice")
                structures = gr.Dataframe(headers=STRUCTURE_COLUMNS, label="Structures (select a row to jump to it)",
                                          interactive=False, elem_id="structures")
                with gr.Row():
                    region = gr.Textbox(label="Report region (optional)", placeholder="abdomen", scale=3)
                    report_button = gr.Button("Draft report", scale=1, elem_id="report-button")
                sentences = gr.Dataframe(headers=SENTENCE_COLUMNS, label="Report (select a sentence to see its evidence)",
                                         interactive=False, elem_id="sentences", wrap=True)
                downloads = gr.File(label="Downloads", file_count="multiple", interactive=False, elem_id="downloads")

        view_inputs = [state, preset, level, width, opacity]
        slider_outputs = [axial, coronal, sagittal]

        def picture(session: ChatSession | None, preset_v, level_v, width_v, opacity_v):
            if session is None or session.viewer is None:
                return None
            return session.render(preset_v, level_v, width_v, opacity_v)

        def sliders(session: ChatSession | None):
            if session is None or session.viewer is None:
                return [gr.Slider(), gr.Slider(), gr.Slider()]
            ni, nj, nk = session.viewer.shape
            i, j, k = session.point
            return [gr.Slider(minimum=0, maximum=nk - 1, value=k), gr.Slider(minimum=0, maximum=nj - 1, value=j),
                    gr.Slider(minimum=0, maximum=ni - 1, value=i)]

        def everything(session: ChatSession, preset_v, level_v, width_v, opacity_v):
            """Viewer, legend, sliders, tables and downloads after the session changed."""
            return [picture(session, preset_v, level_v, width_v, opacity_v), legend_html(session.viewer),
                    *sliders(session), session.structure_rows(), session.sentence_rows(), session.downloads()]

        after_change = [viewer, legend, *slider_outputs, structures, sentences, downloads]

        # -- load ----------------------------------------------------------------------------------
        def on_load(session, scan_up, seg_up, scan_p, seg_p, uid, preset_v, level_v, width_v, opacity_v, history):
            session = ensure(session)
            try:
                message = session.load(scan_p, scan_up, seg_p, seg_up, uid)
            except ProsectorError as err:
                text = f"Could not load the scan: {err.user_message()}"
                return [session, text, history + [_assistant(text)], gr.skip(), *[gr.skip()] * len(after_change)]
            history = history + [_assistant(message)]
            # Folded once loaded: the chat and the viewer get the room; a click opens it again.
            return [session, message, history, gr.Accordion(open=False),
                    *everything(session, preset_v, level_v, width_v, opacity_v)]

        load_button.click(on_load, [state, scan_upload, seg_upload, scan_path, seg_path, series_uid,
                                    preset, level, width, opacity, chatbot],
                          [state, status, chatbot, scan_box, *after_change])

        # -- ask (streamed) --------------------------------------------------------------------------
        def on_ask(session, text, history, preset_v, level_v, width_v, opacity_v, progress=gr.Progress()):
            session = ensure(session)
            text = (text or "").strip()
            if not text:
                yield [session, gr.skip(), history, *[gr.skip()] * len(after_change)]
                return
            history = history + [{"role": "user", "content": text}]
            steps_message = {"role": "assistant", "content": "",
                             "metadata": {"title": "Working…", "status": "pending"}}
            history = history + [steps_message]
            yield [session, "", history, *[gr.skip()] * len(after_change)]

            events: queue.Queue = queue.Queue()
            outcome: dict = {}

            def work():
                try:
                    outcome["reply"] = session.ask(text, progress=lambda f, m="": events.put(("progress", f, m)),
                                                   on_step=lambda line: events.put(("step", line, None)))
                except ProsectorError as err:
                    outcome["error"] = err.user_message()
                except Exception as err:  # never a stack trace in the chat
                    outcome["error"] = f"Something went wrong inside Prosector ({type(err).__name__}: {err})."
                finally:
                    events.put(("done", None, None))

            threading.Thread(target=work, daemon=True).start()
            steps: list[str] = []
            while True:
                kind, value, message = events.get()
                if kind == "done":
                    break
                if kind == "progress":
                    progress(float(value), desc=str(message or "working"))
                    continue
                steps.append(value)
                steps_message["content"] = "\n".join(f"- {s}" for s in steps)
                yield [session, gr.skip(), history, *[gr.skip()] * len(after_change)]

            steps_message["metadata"] = {"title": "Steps", "status": "done"}
            if "error" in outcome:
                history = history + [_assistant(outcome["error"])]
                yield [session, gr.skip(), history, *[gr.skip()] * len(after_change)]
                return
            reply = outcome["reply"]
            answer = reply.text
            if reply.warnings:
                answer += "\n\n" + "\n".join(f"⚠ {w}" for w in reply.warnings)
            history = history + [_assistant(answer)]
            yield [session, gr.skip(), history, *everything(session, preset_v, level_v, width_v, opacity_v)]

        ask_inputs = [state, question, chatbot, preset, level, width, opacity]
        ask_outputs = [state, question, chatbot, *after_change]
        send.click(on_ask, ask_inputs, ask_outputs)
        question.submit(on_ask, ask_inputs, ask_outputs)

        # -- report ----------------------------------------------------------------------------------
        def on_report(session, region_v, history, preset_v, level_v, width_v, opacity_v):
            session = ensure(session)
            try:
                report = session.draft_report(region_v)
            except ProsectorError as err:
                return [session, history + [_assistant(err.user_message())], *[gr.skip()] * len(after_change)]
            return [session, history + [_assistant(report.markdown)],
                    *everything(session, preset_v, level_v, width_v, opacity_v)]

        report_button.click(on_report, [state, region, chatbot, preset, level, width, opacity],
                            [state, chatbot, *after_change])

        # -- viewer controls --------------------------------------------------------------------------
        def on_slider(session, k, j, i, preset_v, level_v, width_v, opacity_v):
            if session is None or session.viewer is None:
                return None
            session.point = (int(i), int(j), int(k))
            return picture(session, preset_v, level_v, width_v, opacity_v)

        for slider in slider_outputs:
            slider.release(on_slider, [state, axial, coronal, sagittal, preset, level, width, opacity], [viewer])
        for control in (preset, opacity, level, width):
            control.change(picture, view_inputs, [viewer])

        def on_structure(session, preset_v, level_v, width_v, opacity_v, evt: gr.SelectData):
            if session is None or session.viewer is None:
                return [gr.skip()] * 4
            ids = list(session.session.masks)
            row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
            if 0 <= row < len(ids):
                session.highlight = None
                session.jump_to(ids[row])
            return [picture(session, preset_v, level_v, width_v, opacity_v), *sliders(session)]

        structures.select(on_structure, view_inputs, [viewer, *slider_outputs])

        def on_sentence(session, preset_v, level_v, width_v, opacity_v, evt: gr.SelectData):
            if session is None or session.viewer is None:
                return [gr.skip()] * 4
            row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
            session.focus_sentence(int(row))
            return [picture(session, preset_v, level_v, width_v, opacity_v), *sliders(session)]

        sentences.select(on_sentence, view_inputs, [viewer, *slider_outputs])
    return app


def _assistant(text: str) -> dict:
    return {"role": "assistant", "content": text}


def launch(app: gr.Blocks, *, host: str = "127.0.0.1", port: int = 7860, max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
           block: bool = True):
    """Serve the app on this machine only unless told otherwise; never through a share link."""
    app.queue(default_concurrency_limit=4)
    return app.launch(server_name=host, server_port=port, share=False, inbrowser=False, show_error=False,
                      max_file_size=f"{int(max_upload_mb)}mb", ssr_mode=False, footer_links=[],
                      theme=offline_theme(), css=CSS, prevent_thread_lock=not block, quiet=True, pwa=False,
                      mcp_server=False, enable_monitoring=False)
