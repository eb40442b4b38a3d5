"""pouw p2p package."""
