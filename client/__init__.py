"""The client side: everything that talks to a node only over RPC, as a user or AI code would
(the job-market client, result verification). See docs/architecture.md."""
