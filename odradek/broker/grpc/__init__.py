"""The gRPC front end: how the protocol-neutral broker core is reached over gRPC."""
