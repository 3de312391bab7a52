"""Training: what every run shares (:mod:`.common`), stage 1 (:mod:`.stage1`, the video model) and
stage 2 (:mod:`.stage2`, the policy; its data in :mod:`.stage2_data`, batches in :mod:`.batcher`, the
stage-1 feature cache in :mod:`.features`)."""
