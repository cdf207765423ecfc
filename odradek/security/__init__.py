"""Transport security shared by the broker and the clients: TLS settings, gRPC
credentials that follow certificate files on disk, and certificate generation for
development and tests. Imports neither odradek.broker nor odradek.client."""
