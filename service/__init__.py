"""Engagement scoring: credible micro-influencers from a live stream of interactions."""

__version__ = "0.1.0"
