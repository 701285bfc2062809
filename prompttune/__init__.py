"""prompttune: reproducible soft prompt tuning benchmarks (PTP, InfoPrompt) on SuperGLUE/FewGLUE."""

__version__ = "0.1.0"
