"""webmacs: monitoring and control backend for lab experiments, an actor system on Trio."""

__version__ = "0.1.0"
