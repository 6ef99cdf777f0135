"""``run --cluster``: the suite on a fleet of machines through Ray (an optional extra)."""
