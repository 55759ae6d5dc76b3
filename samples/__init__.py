"""Runnable samples: ``python -m samples.video_pipeline.run_demo``."""
