"""deploybench harness: configuration, planning, isolated workers, timing, results."""
