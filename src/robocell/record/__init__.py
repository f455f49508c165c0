"""Recording (streams to disk), KPIs and run reports."""

from robocell.record.recorder import Recorder, read_events, read_recording

__all__ = ["Recorder", "read_events", "read_recording"]
