"""pouw consensus package."""
