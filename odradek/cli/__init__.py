"""The `odradek` command line."""

import os

# gRPC's C core writes its own log lines (E1202 ... add_port.cc, ssl_transport_security.cc)
# to stderr, next to the one error line the CLI prints for the same failure. It reads the
# variable once, when grpc is first imported, which this package comes before; a user who
# wants those lines sets GRPC_VERBOSITY themselves.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")
