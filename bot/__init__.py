"""spsbot: literature surveillance for Stiff Person Syndrome (and any rare disease)."""

__version__ = "0.1.0"
