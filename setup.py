"""ament_python package humanprompt_ros: installable with colcon (ROS 2) or pip (ROS 2 from wheels)."""

import os

from setuptools import find_packages, setup

PACKAGE = "humanprompt_ros"


def requirements(path: str) -> list[str]:
    """Requirement lines of a pip requirements file (comments and blanks dropped)."""
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, path)) as f:
        return [line.split("#")[0].strip() for line in f if line.split("#")[0].strip()]


def tree(src: str) -> list[tuple[str, list[str]]]:
    """data_files entries that mirror the folder `src` under share/<package>/`src`."""
    entries = []
    for dirpath, _, filenames in os.walk(src):
        files = [os.path.join(dirpath, f) for f in filenames if not f.startswith(".")]
        if files:
            entries.append((os.path.join("share", PACKAGE, dirpath), files))
    return entries


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*", "benchmarks"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        *tree("launch"),
        *tree("config"),
        *tree("models"),
        *tree("rviz"),
    ],
    python_requires=">=3.10",
    install_requires=requirements("scripts/requirements-learning.txt"),
    extras_require={
        "dev": ["pytest>=7", "pytest-timeout", "ruff==0.17.6"],
        # MediaPipe hand landmarks for real human videos; pulls jax (~1 GB), so it is opt-in.
        "human": ["mediapipe==0.10.14"],
        # V4L2 cameras for the camera node (video files and image folders need no extra).
        "camera": ["opencv-python-headless>=4.8"],
    },
    zip_safe=True,
    maintainer="humanprompt_ros developers",
    maintainer_email="humanprompt-ros@example.org",
    description="Robot dexterous-hand policy prompted by a human demonstration video (ROS 2).",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "humanprompt-hand = humanprompt_ros.cli.hand:main",
            "humanprompt-sim = humanprompt_ros.cli.sim:main",
            "humanprompt-train = humanprompt_ros.cli.train:main",
            "humanprompt-bringup = humanprompt_ros.cli.bringup:main",
            "humanprompt-demo = humanprompt_ros.cli.demo:main",
            "humanprompt-prompt = humanprompt_ros.cli.prompt:main",
            "humanprompt-data = humanprompt_ros.cli.data:main",
            "humanprompt-camera = humanprompt_ros.nodes.camera:main",
            "humanprompt-command = humanprompt_ros.nodes.command:main",
            "humanprompt-prompt-encoder = humanprompt_ros.nodes.prompt_encoder:main",
            "humanprompt-policy = humanprompt_ros.nodes.policy:main",
            "humanprompt-sim-driver = humanprompt_ros.nodes.sim_driver:main",
            "humanprompt-record = humanprompt_ros.nodes.recorder:main",
        ],
    },
)
