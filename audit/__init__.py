"""llava-audit: data validation and licence audit for LLaVA-format training data."""

__version__ = "0.1.0"
