"""Running and measuring the pipeline: the local broker, traffic, the demo, reports, the bench."""
