"""Raft-replicated partitions: the partition log as the Raft log, and the host that
drives many Raft groups over one transport."""
