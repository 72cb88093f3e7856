"""Judging summaries (never running anything): the gate, its rules and noise check, compare, baseline."""
