"""Where the package's data lives: the checkout when run from source, else the installed share dir."""

from __future__ import annotations

from pathlib import Path

PACKAGE = "humanprompt_ros"


def share_dir() -> Path:
    """Directory holding ``config/``, ``launch/``, ``models/``, ``rviz/``.

    A source checkout (``package.xml`` beside the Python package) wins, so edits take effect without
    reinstalling; otherwise the ament index (colcon install or the venv prefix) is used.
    """
    source = Path(__file__).resolve().parent.parent
    if (source / "package.xml").is_file() and (source / "config").is_dir():
        return source
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory(PACKAGE))
    except Exception as exc:  # ImportError or PackageNotFoundError
        raise FileNotFoundError(
            f"cannot find the {PACKAGE} share directory: not a source checkout, and the ament index "
            f"does not list it ({exc}). Source your ROS 2 install or set AMENT_PREFIX_PATH."
        ) from None


def config_path(*parts: str) -> Path:
    """A file under the package's ``config/`` directory."""
    return share_dir().joinpath("config", *parts)


def resolve_hand_path(value: str) -> Path:
    """A hand YAML path: absolute, relative to the working directory, or to the package share directory."""
    p = Path(value).expanduser()
    if p.is_absolute() or p.is_file():
        return p
    return share_dir() / p


def resolve_checkpoint(value: str) -> Path:
    """A policy checkpoint path; empty: the shipped ``models/policy.safetensors``; a relative path that does
    not exist from the working directory is taken from the package share directory."""
    if not value:
        return share_dir() / "models" / "policy.safetensors"
    p = Path(value).expanduser()
    if p.is_absolute() or p.exists():
        return p
    return share_dir() / p
