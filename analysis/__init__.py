"""Turn a run folder's raw files into numbers, verdicts and reports. Reads files only."""
