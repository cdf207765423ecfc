"""What brokers say to each other: Raft messages, controller calls, forwarding."""
