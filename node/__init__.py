"""pouw node package."""
