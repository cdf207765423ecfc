"""Consumer groups: membership, assignment and committed offsets, kept by a coordinator
per group in the internal compacted topic __consumer_offsets."""
