"""Rendering an episode to an mp4 for a human: the camera frames side by side, and beside them
the state and action traces with a cursor at the current frame (matplotlib, Agg backend)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np

from robostack.dataset.reader import DatasetReader


def _plot_traces(episode, fps: int, names: dict[str, list[str]], height: int, width: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in ("observation.state", "action") if k in episode.columns]
    fig, axes = plt.subplots(len(keys), 1, figsize=(width / 100, height / 100), dpi=100, sharex=True, squeeze=False)
    t = np.arange(episode.length) / fps
    for ax, key in zip(axes[:, 0], keys):
        values = episode.columns[key]
        labels = names.get(key) or [f"{key}[{j}]" for j in range(values.shape[1])]
        for j in range(values.shape[1]):
            ax.plot(t, values[:, j], lw=1, label=labels[j] if j < len(labels) else str(j))
        ax.set_ylabel(key, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6, loc="upper right", ncol=2)
        ax.set_xlim(0, max(t[-1], 1.0 / fps))
    axes[-1, 0].set_xlabel("time (s)", fontsize=8)
    fig.tight_layout()
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    # pixel column of each frame's time, and the vertical extent of the axes, for the cursor
    to_px = axes[0, 0].transData
    xs = np.array([to_px.transform((ti, 0))[0] for ti in t]).round().astype(int)
    top = int(height - axes[0, 0].get_window_extent().y1)
    bottom = int(height - axes[-1, 0].get_window_extent().y0)
    plt.close(fig)
    return image, np.clip(xs, 0, image.shape[1] - 1), max(0, top), min(image.shape[0], bottom)


def render_episode(
    root: str | Path, episode_index: int, out: str | Path, *, plot_width: int = 640, progress: Callable[[int], None] | None = None
) -> Path:
    """Write ``out`` (mp4): frames of every camera side by side, traces with a cursor beside."""
    import av

    reader = DatasetReader(root)
    ep = reader.load_episode(episode_index)
    fps = reader.fps
    keys = reader.video_keys
    heights = [reader.features[k]["shape"][0] for k in keys]
    height = max(heights) if heights else 480
    height += height % 2
    names = {k: reader.features.get(k, {}).get("names") or [] for k in ("observation.state", "action")}
    plot, xs, top, bottom = _plot_traces(ep, fps, names, height, plot_width)
    cams_width = sum(reader.features[k]["shape"][1] for k in keys)
    width = cams_width + plot.shape[1]
    width += width % 2
    decoders = [reader.frames(episode_index, k) for k in keys]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(out), "w") as container:
        stream = container.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        canvas = np.zeros((height, width, 3), np.uint8)
        for i in range(ep.length):
            x = 0
            for dec, key in zip(decoders, keys):
                _, img = next(dec)
                canvas[: img.shape[0], x : x + img.shape[1]] = img
                x += img.shape[1]
            canvas[: plot.shape[0], cams_width : cams_width + plot.shape[1]] = plot
            canvas[top:bottom, cams_width + xs[i]] = (220, 30, 30)
            frame = av.VideoFrame.from_ndarray(canvas, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
            if progress:
                progress(1)
        for packet in stream.encode():
            container.mux(packet)
    return out
