"""The Cadenza SDK: what workflow and activity code, workers and clients import.

Users write ``from cadenza import workflow, activity``; the modules live here.
"""
