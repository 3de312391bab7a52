"""rviz/humanprompt.rviz names only topics of the graph, with a compatible type and QoS."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from humanprompt_ros.graph import build_graph

RVIZ = Path(__file__).resolve().parent.parent / "rviz" / "humanprompt.rviz"

#: rviz2 display class → (property holding its topic, message type it subscribes to)
DISPLAY_TYPES = {
    "rviz_default_plugins/Image": ("Topic", "sensor_msgs/msg/Image"),
    "rviz_default_plugins/MarkerArray": ("Topic", "visualization_msgs/msg/MarkerArray"),
    "rviz_default_plugins/Marker": ("Topic", "visualization_msgs/msg/Marker"),
    "rviz_default_plugins/Pose": ("Topic", "geometry_msgs/msg/PoseStamped"),
    "rviz_default_plugins/PoseArray": ("Topic", "geometry_msgs/msg/PoseArray"),
    "rviz_default_plugins/RobotModel": ("Description Topic", "std_msgs/msg/String"),
}
NO_TOPIC = {"rviz_default_plugins/Grid", "rviz_default_plugins/TF", "rviz_default_plugins/Axes"}


def displays(tree: list[dict]):
    for d in tree:
        if d.get("Class") == "rviz_common/Group":
            yield from displays(d.get("Displays", []))
        else:
            yield d


@pytest.fixture(scope="module")
def config():
    return yaml.safe_load(RVIZ.read_text())


def test_rviz_topics_are_graph_topics_with_compatible_types(config):
    topics = pytest.importorskip("humanprompt_ros.ros.topics", reason="needs the ROS message packages")
    graph_nodes = {s.name for s in build_graph({"sim": "true"})}
    seen = {}
    for d in displays(config["Visualization Manager"]["Displays"]):
        cls = d["Class"]
        if cls in NO_TOPIC:
            continue
        assert cls in DISPLAY_TYPES, f"display {d.get('Name')!r}: class {cls} not known to this test"
        key, msg_type = DISPLAY_TYPES[cls]
        if cls == "rviz_default_plugins/RobotModel":
            assert d["Description Source"] == "Topic"
        sub = d[key]
        name = sub["Value"]
        topic = topics.by_name(name)  # KeyError names the known topics
        assert topic.type == msg_type, f"{d['Name']}: {name} is {topic.type}, the display reads {msg_type}"
        assert set(topic.publishers) & graph_nodes, f"{name}: no node of the graph publishes it"
        topics.msg_class(topic)  # the type exists
        # QoS: a reliable display needs a reliable publisher; transient local needs a latched one
        if sub["Reliability Policy"] == "Reliable":
            assert topic.qos != "sensor", f"{d['Name']}: {name} is best effort; the display asks for reliable"
        if sub["Durability Policy"] == "Transient Local":
            assert topic.qos == "latched", f"{d['Name']}: {name} is not transient local"
        seen[name] = d["Name"]
    assert {"/humanprompt/observation", "/humanprompt/preview", "/humanprompt/markers", "/robot_description"} <= set(
        seen
    )


def test_fixed_frame_is_the_command_nodes_default(config):
    from humanprompt_ros.config.nodes import load_command_config
    from humanprompt_ros.paths import config_path

    assert (
        config["Visualization Manager"]["Global Options"]["Fixed Frame"]
        == load_command_config(config_path("command.yaml")).frame_id
    )
