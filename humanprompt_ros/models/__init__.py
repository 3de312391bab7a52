"""Learned models: the frame autoencoder, the cross-prediction video model (stage 1), the Video Former,
and (stage 2) the prompt-conditioned diffusion policy. Pure PyTorch, no ROS."""
