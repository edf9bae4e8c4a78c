"""Episode videos of image-observation envs (MinAtar, Atari): a GIF always, an MP4 when ffmpeg is present."""

from __future__ import annotations

import numpy as np


def is_image(shape: tuple[int, ...]) -> bool:
    """``[H, W, C]`` observations (not flat vectors): the ones a video can show."""
    return len(shape) == 3 and shape[0] > 1 and shape[1] > 1


def to_rgb(frames: np.ndarray) -> np.ndarray:
    """``[T, H, W, C]`` observations -> ``[T, H, W, 3]`` uint8. RGB and grey frames as they are; other
    channel counts (MinAtar's one channel per object kind) get one colour per channel."""
    import matplotlib

    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        scale = float(np.max(np.abs(frames))) or 1.0
        frames = np.clip(frames.astype(np.float64) / scale, 0.0, 1.0)
    else:
        frames = frames.astype(np.float64) / 255.0
    channels = frames.shape[-1]
    if channels == 3:
        rgb = frames
    elif channels == 1:
        rgb = np.repeat(frames, 3, axis=-1)
    else:
        colours = np.asarray(matplotlib.colormaps["tab10"].colors)[np.arange(channels) % 10]  # [C, 3]
        rgb = (frames[..., :, None] * colours).max(axis=-2)
    return (rgb * 255).round().astype(np.uint8)


def write_video(frames: np.ndarray, path_stem: str, fps: int = 10, min_size: int = 160) -> list[str]:
    """``frames [T, H, W, C]`` -> ``<stem>.gif`` (and ``<stem>.mp4`` if ffmpeg is installed); returns the paths."""
    from PIL import Image

    rgb = to_rgb(frames)
    scale = max(1, -(-min_size // max(rgb.shape[1:3])))
    rgb = rgb.repeat(scale, axis=1).repeat(scale, axis=2)
    images = [Image.fromarray(f) for f in rgb]
    paths = [f"{path_stem}.gif"]
    images[0].save(paths[0], save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    from matplotlib import animation

    if animation.writers.is_available("ffmpeg"):
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(rgb.shape[2] / 100, rgb.shape[1] / 100), dpi=100)
        ax.set_axis_off()
        fig.subplots_adjust(0, 0, 1, 1)
        shown = ax.imshow(rgb[0])
        writer = animation.FFMpegWriter(fps=fps)
        with writer.saving(fig, f"{path_stem}.mp4", dpi=100):
            for frame in rgb:
                shown.set_data(frame)
                writer.grab_frame()
        plt.close(fig)
        paths.append(f"{path_stem}.mp4")
    return paths
