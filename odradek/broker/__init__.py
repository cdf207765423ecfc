"""The broker process: topics and partitions on disk behind a thin gRPC front end."""
