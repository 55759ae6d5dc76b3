"""The video pipeline sample: two teams' task queues, fan-out transcoding, a reviewer signal."""
