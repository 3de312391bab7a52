"""Robot hands: the hand YAML (:mod:`.hand`, ``load_hand``), its URDF (:mod:`.urdf`), kinematics
(:mod:`.kinematics`, pinocchio), retargeting of unified actions onto joints (:mod:`.retargeting`), the
21 human hand keypoints (:mod:`.keypoints`), and hand pose from a real video (:mod:`.video_pose`, with
:mod:`.camera_geometry` and :mod:`.tracks`)."""

from humanprompt_ros.hand.hand import Hand, HandConfig, load_hand

__all__ = ["Hand", "HandConfig", "load_hand"]
