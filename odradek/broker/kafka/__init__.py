"""The Kafka wire-protocol front end: a second listener over the same domain services as
grpc/ (see docs/kafka.md)."""
