"""The local web UI (`inclg app`): upload a photo, paint or auto-draw the mask, predict, download.

Gradio is imported only here (the `app` extra); see ui.py.
"""
