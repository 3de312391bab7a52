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
