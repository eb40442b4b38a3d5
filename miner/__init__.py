"""pouw miner package."""
