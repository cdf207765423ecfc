"""Topics and partitions as the front ends use them: reads (fetch with long-poll, list
offsets) over the local partition replicas, with plain request and result types."""
