"""OpenSpeedy: make two-stage text-to-speech models small and fast, and serve them."""

__version__ = "0.1.0"
